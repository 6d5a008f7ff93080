package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/gateway/trace"
)

// traceFlags are serve's protocol trace flags; each overrides its key of
// the trace section.
type traceFlags struct {
	protocols []string
	file      string
	bodies    bool
	flags     *pflag.FlagSet // to tell a flag left out from one set to its zero value
}

func (t *traceFlags) addFlags(f *pflag.FlagSet) {
	t.flags = f
	f.StringSliceVar(&t.protocols, "trace", nil, "write a protocol trace of these protocols: sip, xmpp, dns (default trace.protocols; see 'xgw trace')")
	f.StringVar(&t.file, "trace-file", "", "protocol trace file (default trace.file, "+config.DefaultTraceFile+"); on its own it traces sip,xmpp")
	f.BoolVar(&t.bodies, "trace-bodies", false, "keep message bodies, presence status and notes in the trace (default trace.bodies); dialback keys and SASL stay hidden")
}

// traceSettings merges the trace section and the flags.
type traceSettings struct {
	protocols trace.Proto
	file      string
	bodies    bool
}

func (t *traceFlags) settings(cfg *config.Config) (traceSettings, error) {
	names := cfg.Trace.Protocols
	changed := func(name string) bool { return t.flags != nil && t.flags.Changed(name) }
	if changed("trace") {
		names = t.protocols
	}
	file := cfg.Path(cfg.Trace.File)
	if t.file != "" {
		file = t.file
		if len(names) == 0 {
			names = []string{"sip", "xmpp"}
		}
	}
	bodies := cfg.Trace.Bodies
	if changed("trace-bodies") {
		bodies = t.bodies
	}
	p, err := trace.ParseProtocols(names)
	if err != nil {
		return traceSettings{}, fmt.Errorf("--trace: %w", err)
	}
	return traceSettings{protocols: p, file: file, bodies: bodies}, nil
}

// open starts the Tracer serve asked for; nil when tracing is off.
func (t *traceFlags) open(cfg *config.Config, log *slog.Logger) (*trace.Tracer, error) {
	st, err := t.settings(cfg)
	if err != nil || st.protocols == 0 {
		return nil, err
	}
	tr, err := trace.Open(trace.Options{File: st.file, Protocols: st.protocols, Bodies: st.bodies,
		MaxSize: int64(cfg.Trace.MaxSizeMB) << 20, MaxFiles: cfg.Trace.MaxFiles})
	if err != nil {
		return nil, err
	}
	if st.bodies {
		log.Warn("protocol trace on, with message bodies in clear", "file", st.file, "protocols", st.protocols.String())
	} else {
		log.Info("protocol trace on", "file", st.file, "protocols", st.protocols.String(), "bodies", "redacted")
	}
	return tr, nil
}

type traceOptions struct {
	*globalOptions
	file   string
	follow bool
	grep   string
	proto  string
}

func newTraceCmd(s *Streams, g *globalOptions, runF func(context.Context, *traceOptions) error) *cobra.Command {
	o := &traceOptions{globalOptions: g}
	cmd := &cobra.Command{
		Use:   "trace FILE",
		Short: "Print a protocol trace for a person",
		Long: `Prints a protocol trace written by 'xgw serve --trace' (or the trace section
of the config): one header line per message (time, direction, protocol, peer,
our and the partner's domain, stream ID or Call-ID), then the message: XML
indented, SIP as it was. It is what OCSLogger was for the OCS gateway.

--grep keeps the records of one conversation or partner: a Call-ID, a stream
ID, a thread or a domain matches exactly, anything else is looked for in the
peer address and the message. An XMPP message translated from SIP carries the
MESSAGE's Call-ID as its <thread/>, so one Call-ID shows both sides.

Bodies appear as "[N bytes redacted]" unless the gateway ran with
--trace-bodies; dialback keys and SASL payloads are never written.

Exit codes: 0 printed, 2 bad flags or an unreadable trace.`,
		Example: `  # The whole trace
  xgw trace /var/lib/xgw/trace.jsonl

  # Follow one SIP dialog and the XMPP messages of its thread, live
  xgw trace /var/lib/xgw/trace.jsonl --follow --grep 3848276298220188511@edge.example.com

  # Only the s2s side, for one partner domain
  xgw trace /var/lib/xgw/trace.jsonl --proto xmpp --grep gmail.com`,
		Args: traceArgs,
		RunE: func(c *cobra.Command, args []string) error {
			o.file = args[0]
			if runF != nil {
				return runF(c.Context(), o)
			}
			return runTrace(c.Context(), s, o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.follow, "follow", "f", false, "keep printing records as they are written (across rotations) until interrupted")
	f.StringVar(&o.grep, "grep", "", "only records of this Call-ID, stream ID, thread or domain (or containing it)")
	f.StringVar(&o.proto, "proto", "", "only this protocol: sip, xmpp or dns")
	return cmd
}

// traceArgs wants exactly the trace FILE; cobra's own message ("accepts 1
// arg(s)") does not say what is missing.
func traceArgs(_ *cobra.Command, args []string) error {
	switch {
	case len(args) == 0:
		return usageError(errors.New("missing the trace FILE to read (expected e.g. xgw trace /var/lib/xgw/trace.jsonl; the file is trace.file or --trace-file of xgw serve, by default " + config.DefaultTraceFile + ")"))
	case len(args) > 1:
		return usageError(fmt.Errorf("one trace FILE expected, found %d arguments %q (e.g. xgw trace /var/lib/xgw/trace.jsonl; use --grep to select records)", len(args), args))
	}
	return nil
}

func runTrace(ctx context.Context, s *Streams, o *traceOptions) error {
	if o.proto != "" {
		if _, err := trace.ParseProtocols([]string{o.proto}); err != nil {
			return usageError(fmt.Errorf("--proto: %w", err))
		}
	}
	p := trace.NewPrinter(s.Out, o.color(s))
	filter := trace.Filter{Grep: o.grep, Proto: strings.ToLower(o.proto)}
	var err error
	if o.follow {
		err = trace.Follow(ctx, o.file, 250*time.Millisecond, filter, p.Print)
	} else {
		var f *os.File
		if f, err = os.Open(o.file); err == nil {
			err = trace.Read(f, filter, p.Print)
			f.Close()
		}
	}
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		return usageError(fmt.Errorf("%w (expected the trace file of xgw serve --trace, by default %s)", err, config.DefaultTraceFile))
	}
	if err != nil {
		return usageError(err)
	}
	return nil
}
