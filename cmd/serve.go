package cmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"github.com/xgw-gateway/xgw/checks"
	"github.com/xgw-gateway/xgw/gateway"
	"github.com/xgw-gateway/xgw/gateway/config"
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
messages and typing notifications and mapping errors both ways.

SIGINT or SIGTERM stops it gracefully: new messages are refused, those in
flight are delivered or bounced, streams and the SIP endpoint close, exit 0.

Logs go to stderr: text on a terminal, JSON lines otherwise (--log-format).

Exit codes: 0 stopped by a signal, 1 a check failed (without --force) or
the gateway failed, 2 bad flags or config.`,
		Example: `  # Production: checks first, then serve
  xgw serve --config /etc/xgw/xgw.yaml

  # Start although a check fails (e.g. the Edge is still being set up)
  xgw serve --force

  # Lab: staging DNS, state in a scratch directory, debug logs as JSON
  xgw serve --dns-server 127.0.0.53:53 --state-dir ./state --log-level debug --log-format json

  # Skip the hairpin probe before serving, report as JSON
  xgw serve --skip net.hairpin -o json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
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
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "", "log format: text or json (default text on a terminal, json otherwise)")
	f.StringVar(&o.dnsServer, "dns-server", "", "send every DNS query to HOST:PORT (default checks.dns_server, else the system resolver)")
	f.StringSliceVar(&o.skip, "skip", nil, "do not run these check IDs before serving")
	return cmd
}

func runServe(ctx context.Context, s *Streams, o *serveOptions) error {
	r, err := report.New(o.output, report.Options{Color: o.color(s)})
	if err != nil {
		return usageError(err)
	}
	log, err := newLogger(s.ErrOut, o.logLevel, o.logFormat)
	if err != nil {
		return usageError(err)
	}
	cfg, err := config.LoadFile(o.path(s))
	if err != nil {
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
	opts := append([]gateway.Option{gateway.WithLogger(log), gateway.WithStateDir(o.stateDir),
		gateway.WithDNSServer(o.dnsServer)}, o.gatewayOpts...)
	srv, err := gateway.New(cfg, opts...)
	if err != nil {
		return &exitError{code: report.ExitFailed, msg: err.Error()}
	}
	if err := srv.Serve(ctx); err != nil {
		return &exitError{code: report.ExitFailed, msg: err.Error()}
	}
	return nil
}

// newLogger builds the serve log: text on a terminal, JSON lines otherwise.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
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
