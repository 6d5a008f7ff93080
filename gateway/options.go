package gateway

import (
	"log/slog"
	"net"
	"time"

	"github.com/xgw-gateway/xgw/gateway/metrics"
	"github.com/xgw-gateway/xgw/gateway/sip"
	"github.com/xgw-gateway/xgw/gateway/trace"
	"github.com/xgw-gateway/xgw/gateway/xmpp"
)

// Option changes how New builds a Server.
type Option func(*options)

type options struct {
	log       *slog.Logger
	xmppLn    net.Listener
	sipListen string
	stateDir  string
	dnsServer string
	drain     time.Duration
	metrics   *metrics.Metrics
	tuneSIP   []func(*sip.Config)
	tuneXMPP  []func(*xmpp.Config)
	tracer    *trace.Tracer
}

// DefaultStateDir holds the subscription store (subscriptions.db).
const DefaultStateDir = "/var/lib/xgw"

// DefaultDrainTimeout bounds a graceful stop: the time given to messages
// in flight to be delivered or bounced before the streams close.
const DefaultDrainTimeout = 10 * time.Second

// WithLogger sets the logger both sides and the gateway log to.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithXMPPListener serves s2s streams on ln instead of binding xmpp.listen
// (tests bind 127.0.0.1:0 themselves). Serve closes it.
func WithXMPPListener(ln net.Listener) Option { return func(o *options) { o.xmppLn = ln } }

// WithSIPListen binds the SIP listener to addr instead of sip.listen, e.g.
// "127.0.0.1:0" in tests; the endpoint binds it itself (gateway/sip takes
// no listener from outside), and SIPAddr reports the bound address.
func WithSIPListen(addr string) Option { return func(o *options) { o.sipListen = addr } }

// WithStateDir keeps SIP subscriptions in dir/subscriptions.db (bbolt), so
// they survive a restart. "" keeps them in memory only.
func WithStateDir(dir string) Option { return func(o *options) { o.stateDir = dir } }

// WithDNSServer sends every lookup to HOST:PORT, overriding
// checks.dns_server ("" keeps the config's choice, else the system's).
func WithDNSServer(addr string) Option { return func(o *options) { o.dnsServer = addr } }

// WithDrainTimeout bounds the graceful stop (DefaultDrainTimeout).
func WithDrainTimeout(d time.Duration) Option { return func(o *options) { o.drain = d } }

// WithTracer records the messages both sides read and write (the
// protocol trace; see gateway/trace). The caller closes the Tracer after
// Serve returns. nil traces nothing.
func WithTracer(t *trace.Tracer) Option { return func(o *options) { o.tracer = t } }

// WithSIPConfig changes the SIP endpoint's configuration after it was
// derived from the config file (timeouts, keepalive, limits).
func WithSIPConfig(f func(*sip.Config)) Option {
	return func(o *options) { o.tuneSIP = append(o.tuneSIP, f) }
}

// WithXMPPConfig changes the s2s server's configuration after it was
// derived from the config file (timeouts, limits, dialing).
func WithXMPPConfig(f func(*xmpp.Config)) Option {
	return func(o *options) { o.tuneXMPP = append(o.tuneXMPP, f) }
}

// WithMetrics counts the gateway's traffic in m (the admin listener's
// /metrics); register metrics.NewStateCollector(server) for the gauges.
func WithMetrics(m *metrics.Metrics) Option { return func(o *options) { o.metrics = m } }
