package cmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"github.com/xgw-gateway/xgw/checks"
	"github.com/xgw-gateway/xgw/gateway"
	"github.com/xgw-gateway/xgw/gateway/admin"
	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/gateway/metrics"
	"github.com/xgw-gateway/xgw/gateway/presenceapi"
	"github.com/xgw-gateway/xgw/report"
)

type serveOptions struct {
	*globalOptions
	output    string
	force     bool
	stateDir  string
	logLevel  string
	logFormat string
	dnsServer string
	skip      []string
	adminAddr string
	// logLevelSet is true when --log-level was given: it then wins over
	// log.level, at start and on every reload.
	logLevelSet bool
	trace       traceFlags
	// gatewayOpts are extra gateway options (tests inject listeners).
	gatewayOpts []gateway.Option
}

func newServeCmd(s *Streams, g *globalOptions, runF func(context.Context, *serveOptions) error) *cobra.Command {
	o := &serveOptions{globalOptions: g}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the checks, then operate the gateway",
		Long: `Runs the whole check suite of 'xgw check' and prints its report; if any
check fails it refuses to start (exit 1), unless --force, which logs a
warning per failed check and starts anyway. Then it serves both sides:
XMPP server-to-server on xmpp.listen and SIP on sip.listen, relaying
messages, typing notifications and presence, and mapping errors both ways.

SIGINT or SIGTERM stops it gracefully: new messages are refused, those in
flight are delivered or bounced, streams and the SIP endpoint close, exit 0.

SIGHUP re-reads the config file and applies the federation allow list
(xmpp.federation, open, deny), the certificates (tls.cert/tls.key toward
both sides, tls.domains toward XMPP peers), the Edge's CA (tls.ca), the
dialback secret, log.level and admin.token without dropping streams or
dialogs; a bad file is refused with the reason logged and the old config
stays; keys that need a restart are logged as such. --admin-listen and an
explicit --log-level keep overriding their keys on every reload.

The admin listener (admin.listen, default 127.0.0.1:9269, --admin-listen)
serves /metrics (Prometheus), /healthz and /readyz, and re-runs the checks
every admin.check_interval for xgw_check_status. With admin.token set it
also serves the presence API: GET /v1/presence/{user@domain} and the
server-sent-events stream GET /v1/presence/stream (without a token: 403).

Logs go to stderr: text on a terminal, JSON lines otherwise (--log-format).

--trace sip,xmpp[,dns] (or the trace section) writes every SIP message and
XMPP stanza or stream element read or written to a JSON-lines file
(--trace-file, default trace.file), rotated by size; bodies are redacted
unless --trace-bodies, dialback keys and SASL payloads always. Read it with
'xgw trace FILE'.

Exit codes: 0 stopped by a signal, 1 a check failed (without --force) or
the gateway failed, 2 bad flags or config.`,
		Example: `  # Production: checks first, then serve
  xgw serve --config /etc/xgw/xgw.yaml

  # Start although a check fails (e.g. the Edge is still being set up)
  xgw serve --force

  # Find out why messages go nowhere: trace both sides, then read it
  xgw serve --trace sip,xmpp --trace-file /var/lib/xgw/trace.jsonl
  xgw trace /var/lib/xgw/trace.jsonl --grep partner.example

  # Lab: staging DNS, state in a scratch directory, debug logs as JSON
  xgw serve --dns-server 127.0.0.53:53 --state-dir ./state --log-level debug --log-format json

  # Skip the hairpin probe before serving, report as JSON
  xgw serve --skip net.hairpin -o json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.logLevelSet = c.Flags().Changed("log-level")
			if runF != nil {
				return runF(c.Context(), o)
			}
			return runServe(c.Context(), s, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "text", "check report format: text, json or junit")
	f.BoolVar(&o.force, "force", false, "start even when checks fail (a warning is logged per failed check)")
	f.StringVar(&o.stateDir, "state-dir", gateway.DefaultStateDir, "directory of the subscription store (subscriptions.db)")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error (default log.level, else info; when given, it wins over log.level)")
	f.StringVar(&o.logFormat, "log-format", "", "log format: text or json (default text on a terminal, json otherwise)")
	f.StringVar(&o.dnsServer, "dns-server", "", "send every DNS query to HOST:PORT (default checks.dns_server, else the system resolver)")
	f.StringSliceVar(&o.skip, "skip", nil, "do not run these check IDs before serving")
	o.trace.addFlags(f)
	f.StringVar(&o.adminAddr, "admin-listen", "", "serve /metrics, /healthz, /readyz and /v1/presence/ on HOST:PORT (default admin.listen, 127.0.0.1:9269)")
	return cmd
}

func runServe(ctx context.Context, s *Streams, o *serveOptions) error {
	r, err := report.New(o.output, report.Options{Color: o.color(s)})
	if err != nil {
		return usageError(err)
	}
	level := new(slog.LevelVar)
	log, err := newLevelLogger(s.ErrOut, level, o.logLevel, o.logFormat)
	if err != nil {
		return usageError(err)
	}
	if err := dnsServerFlag(o.dnsServer); err != nil {
		return usageError(err)
	}
	cfg, err := config.LoadFile(o.path(s))
	if err != nil {
		return usageError(err)
	}
	fo := o.overrides()
	if err := fo.apply(cfg); err != nil {
		return usageError(err)
	}
	if cfg.Log.Level != "" {
		level.UnmarshalText([]byte(cfg.Log.Level)) // validated by config or newLevelLogger
	}
	// A bad --trace is a usage error before anything is probed.
	if _, err := o.trace.settings(cfg); err != nil {
		return usageError(err)
	}
	selected, err := checks.Select(checks.All(), nil, o.skip, false)
	if err != nil {
		return usageError(err)
	}
	rep, err := runSuite(ctx, cfg, selected, o.dnsServer, 0, false)
	if err != nil {
		return usageError(err)
	}
	if err := r.Render(s.Out, rep); err != nil {
		return err
	}
	var failed []checks.Result
	for _, res := range rep.Results {
		if res.Status == checks.Fail {
			failed = append(failed, res)
		}
	}
	if len(failed) > 0 && !o.force {
		return &exitError{code: report.ExitFailed,
			msg: fmt.Sprintf("%d check(s) failed: not starting; fix them or start anyway with --force", len(failed))}
	}
	for _, res := range failed {
		log.Warn("starting despite a failed check (--force)", "check", res.ID, "target", res.Target,
			"found", res.Found, "expected", res.Expected, "fix", res.Fix)
	}
	if ctx.Err() != nil {
		return nil // stopped while the checks ran
	}
	tr, err := o.trace.open(cfg, log)
	if err != nil {
		return usageError(err)
	}
	defer tr.Close()
	o.gatewayOpts = append(o.gatewayOpts, gateway.WithTracer(tr))
	met := metrics.New()
	opts := append([]gateway.Option{gateway.WithLogger(log), gateway.WithStateDir(o.stateDir),
		gateway.WithDNSServer(o.dnsServer), gateway.WithMetrics(met)}, o.gatewayOpts...)
	srv, err := gateway.New(cfg, opts...)
	if err != nil {
		return &exitError{code: report.ExitFailed, msg: err.Error()}
	}
	if err := met.Register(metrics.NewStateCollector(srv)); err != nil {
		srv.Close()
		return &exitError{code: report.ExitFailed, msg: err.Error()}
	}
	adminLn, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		srv.Close()
		return &exitError{code: report.ExitFailed,
			msg: fmt.Sprintf("admin.listen %s: %v (expected a free local port; change admin.listen or --admin-listen)", cfg.Admin.Listen, err)}
	}
	adm := admin.New(met.Handler(), srv.Ready, cfg.Admin.Token)
	adm.Presence(presenceapi.NewHandler(srv.PresenceView()))
	bg, stop := context.WithCancel(ctx)
	defer stop()
	go admin.Serve(bg, adminLn, adm)
	log.Info("admin listening", "addr", adminLn.Addr().String(), "token", cfg.Admin.Token != "")

	// The periodic checks probe the config of the moment: a reload's new
	// certificate or partners are what should be checked.
	var current atomic.Pointer[config.Config]
	current.Store(cfg)
	periodic := periodicChecks(selected)
	met.SetChecks(checkResults(rep, periodic), time.Now())
	go runChecksEvery(bg, time.Duration(cfg.Admin.CheckInterval), func() {
		if rep, err := runSuite(bg, current.Load(), periodic, o.dnsServer, 0, false); err == nil {
			met.SetChecks(checkResults(rep, periodic), time.Now())
		}
	})

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-bg.Done():
				return
			case <-hup:
				if nc := reload(o.path(s), fo, srv, adm, level, log); nc != nil {
					current.Store(nc)
				}
			}
		}
	}()

	if err := srv.Serve(ctx); err != nil {
		return &exitError{code: report.ExitFailed, msg: err.Error()}
	}
	return nil
}

// flagOverrides are the serve flags that override config keys, at start
// and on every reload alike.
type flagOverrides struct {
	adminListen string // --admin-listen, "" when not given
	logLevel    string // --log-level when given explicitly, else ""
}

func (o *serveOptions) overrides() flagOverrides {
	fo := flagOverrides{adminListen: o.adminAddr}
	if o.logLevelSet {
		fo.logLevel = o.logLevel
	}
	return fo
}

// apply sets cfg's keys from the flags given; --admin-listen is validated
// like admin.listen (loopback, or admin.token set).
func (fo flagOverrides) apply(cfg *config.Config) error {
	if fo.adminListen != "" {
		cfg.Admin.Listen = fo.adminListen
		if errs := cfg.Validate(); len(errs) > 0 {
			return fmt.Errorf("--admin-listen: %w", errs)
		}
	}
	if fo.logLevel != "" {
		cfg.Log.Level = fo.logLevel // already checked by newLevelLogger
	}
	return nil
}

// reload applies a re-read config file (SIGHUP), with the flags of fo
// still overriding it, and returns it; a file that does not load is
// refused (nil) and the running config stays.
func reload(path string, fo flagOverrides, srv *gateway.Server, adm *admin.Handler, level *slog.LevelVar, log *slog.Logger) *config.Config {
	nc, err := config.LoadFile(path)
	if err == nil {
		err = fo.apply(nc)
	}
	if err != nil {
		log.Error("config reload refused: the running config stays", "file", path, "reason", err.Error())
		return nil
	}
	if _, err := srv.Reload(nc); err != nil {
		log.Error("config reload refused: the running config stays", "file", path, "reason", err.Error())
		return nil
	}
	if nc.Log.Level != "" {
		level.UnmarshalText([]byte(nc.Log.Level))
	}
	adm.SetToken(nc.Admin.Token)
	log.Info("config reload: log level", "log_level", level.Level().String())
	return nc
}

// notPeriodic are the checks the periodic run leaves out, since the
// running gateway holds their ports: net.xmpp and net.hairpin listen there
// as a stand-in for the gateway, and bind.* can only say "held by xgw
// itself" (or, with a tcp/udp Edge, that they cannot tell who holds
// sip.listen: a false failure). /readyz and xgw_xmpp_streams cover the
// listeners instead.
var notPeriodic = map[string]bool{"net.xmpp": true, "net.hairpin": true, "bind.sip": true, "bind.xmpp": true}

func periodicChecks(selected []checks.Check) []checks.Check {
	var out []checks.Check
	for _, c := range selected {
		if !notPeriodic[c.ID] {
			out = append(out, c)
		}
	}
	return out
}

// checkResults maps a report to xgw_check_status values (0 pass, 1 warn,
// 2 fail, 3 skip), keeping only the checks in run.
func checkResults(rep *report.Report, run []checks.Check) []metrics.CheckResult {
	ids := map[string]bool{}
	for _, c := range run {
		ids[c.ID] = true
	}
	value := map[checks.Status]int{checks.Pass: 0, checks.Warn: 1, checks.Fail: 2, checks.Skip: 3}
	var out []metrics.CheckResult
	for _, r := range rep.Results {
		if ids[r.ID] {
			out = append(out, metrics.CheckResult{ID: r.ID, Target: r.Target, Status: value[r.Status]})
		}
	}
	return out
}

// runChecksEvery calls run every interval until ctx ends.
func runChecksEvery(ctx context.Context, interval time.Duration, run func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			run()
		}
	}
}

// newLevelLogger builds the serve log: text on a terminal, JSON lines
// otherwise, at the level in lv, which a reload changes.
func newLevelLogger(w io.Writer, lv *slog.LevelVar, level, format string) (*slog.Logger, error) {
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: expected debug, info, warn or error", level)
	}
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			format = "text"
		}
	}
	ho := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("--log-format %q: expected text or json", format)
}
