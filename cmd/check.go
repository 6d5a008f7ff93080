package cmd

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/xgw-gateway/xgw/checks"
	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/resolve"
	"github.com/xgw-gateway/xgw/report"
)

type checkOptions struct {
	*globalOptions
	output     string
	only       []string
	skip       []string
	timeout    time.Duration
	timeoutSet bool // --timeout given: it must then be above zero
	strict     bool
	dnsServer  string
	online     bool
}

func newCheckCmd(s *Streams, g *globalOptions, runF func(context.Context, *checkOptions) error) *cobra.Command {
	o := &checkOptions{globalOptions: g}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Probe the deployment: DNS, certificates, firewall, Edge, peers",
		Long: `Runs every readiness probe against the deployment described by the config
file and reports, per probe and target, pass/fail/warn/skip with what was
found, what was expected and how to fix it.

Exit codes: 0 no check failed, 1 a check failed (or warned, with --strict),
2 bad flags or config (nothing was probed).`,
		Example: `  # Before go-live, against the production resolver
  xgw check --config /etc/xgw/xgw.yaml

  # In CI, against staging DNS, as JUnit for the test dashboard
  xgw check --dns-server 10.0.0.53:53 -o junit > xgw-check.xml

  # Only the DNS and certificate probes, machine-readable
  xgw check --only dns.srv,dns.a,tls.name -o json

  # List the probes
  xgw check list`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.timeoutSet = c.Flags().Changed("timeout")
			if runF != nil {
				return runF(c.Context(), o)
			}
			return runCheck(c.Context(), s, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "text", "output format: text, json or junit")
	f.StringSliceVar(&o.only, "only", nil, "run only these check IDs (comma-separated or repeated)")
	f.StringSliceVar(&o.skip, "skip", nil, "do not run these check IDs")
	f.DurationVar(&o.timeout, "timeout", 0, "deadline for the whole run (default checks.timeout, 5s)")
	f.BoolVar(&o.strict, "strict", false, "treat warnings as failures")
	f.StringVar(&o.dnsServer, "dns-server", "", "send every DNS query to HOST:PORT (default checks.dns_server, else the system resolver)")
	f.BoolVar(&o.online, "online", false, "also run opt-in probes that contact hosts outside this network (federated peers)")
	cmd.AddCommand(newCheckListCmd(s))
	return cmd
}

func runCheck(ctx context.Context, s *Streams, o *checkOptions) error {
	r, err := report.New(o.output, report.Options{Color: o.color(s)})
	if err != nil {
		return usageError(err)
	}
	if o.timeoutSet && o.timeout <= 0 {
		return usageError(fmt.Errorf("--timeout %s: expected a duration above zero, e.g. --timeout 10s", o.timeout))
	}
	if err := dnsServerFlag(o.dnsServer); err != nil {
		return usageError(err)
	}
	cfg, err := config.LoadFile(o.path(s))
	if err != nil {
		return usageError(err)
	}
	selected, err := checks.Select(checks.All(), o.only, o.skip, o.online)
	if err != nil {
		return usageError(err)
	}
	rep, err := runSuite(ctx, cfg, selected, o.dnsServer, o.timeout, o.online)
	if err != nil {
		return usageError(err)
	}
	rep.Strict = o.strict
	if err := r.Render(s.Out, rep); err != nil {
		return err
	}
	if code := rep.ExitCode(); code != report.ExitOK {
		return &exitError{code: code}
	}
	return nil
}

// runSuite runs the selected checks under one deadline; `xgw serve` uses it too.
func runSuite(ctx context.Context, cfg *config.Config, selected []checks.Check, dnsServer string, timeout time.Duration, online bool) (*report.Report, error) {
	if dnsServer == "" {
		dnsServer = cfg.Checks.DNSServer
	}
	res, err := resolve.New(dnsServer)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = time.Duration(cfg.Checks.Timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	env := &checks.Env{Config: cfg, Resolver: res, Online: online}
	return &report.Report{Results: checks.Run(ctx, env, selected)}, nil
}

// dnsServerFlag checks --dns-server as checks.dns_server is checked:
// HOST:PORT, or a bare IP address meaning port 53 (as resolve.New reads it).
func dnsServerFlag(s string) error {
	if s == "" {
		return nil
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	bad := func(what string) error {
		return fmt.Errorf("--dns-server %q: %s (expected HOST:PORT, e.g. 127.0.0.53:53, or an IP address for port 53)", s, what)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return bad("not an address")
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return bad(fmt.Sprintf("port %q is not from 1 to 65535", port))
	}
	if _, err := netip.ParseAddr(host); err != nil {
		if host == "" {
			return bad("no host before the port")
		}
		if p := config.HostnameProblem(host); p != "" {
			return bad(fmt.Sprintf("host %q: %s", host, p))
		}
	}
	return nil
}

// color decides once whether the text renderer colours its output.
func (g *globalOptions) color(s *Streams) bool {
	return s.OutTTY && !g.noColor && s.Getenv("NO_COLOR") == ""
}
