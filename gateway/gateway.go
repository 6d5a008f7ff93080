package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/gateway/metrics"
	"github.com/xgw-gateway/xgw/gateway/presenceapi"
	"github.com/xgw-gateway/xgw/gateway/sip"
	"github.com/xgw-gateway/xgw/gateway/trace"
	"github.com/xgw-gateway/xgw/gateway/translate"
	"github.com/xgw-gateway/xgw/gateway/xmpp"
	"github.com/xgw-gateway/xgw/internal/resolve"
)

// Server is the running gateway: the s2s server facing XMPP domains, the
// SIP endpoint facing the Edge, and the translation between them.
type Server struct {
	cfg    *config.Config
	log    *slog.Logger
	mapper *translate.Mapper
	lanes  *lanes      // XMPP -> SIP, one lane per conversation
	xs     xmppServer  // counts stanzas sent (observe.go)
	ep     sipEndpoint // counts requests sent
	met    *metrics.Metrics
	store  *sip.BoltStore    // nil: subscriptions in memory
	pres   presenceBook      // presence.go
	view   *presenceapi.View // what the presence API reads; fed from presence.go
	drain  time.Duration

	xmppLn   net.Listener
	xmppAddr string

	// What Reload replaces (reload.go): our certificates, and the
	// configured partners that name xgw_xmpp_streams' partner label.
	certs    atomic.Pointer[certSet] // nil: no TLS toward XMPP peers
	partners atomic.Pointer[map[string]bool]
	serving  atomic.Bool // Serve runs and does not drain: Ready

	// inflight counts handler calls under way, so a graceful stop waits
	// for them; draining makes new ones refuse with "shutting down".
	mu       sync.Mutex // guards draining and the Add side of inflight
	draining bool
	inflight sync.WaitGroup

	serveOnce sync.Once
}

// New builds both sides from cfg; nothing listens or dials until Listen or
// Serve. It reads tls.cert, tls.key and tls.ca, and opens the subscription
// store in the state directory.
func New(cfg *config.Config, opts ...Option) (*Server, error) {
	o := options{drain: DefaultDrainTimeout}
	for _, f := range opts {
		f(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	mapper, err := translate.NewMapperFromConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	dnsServer := o.dnsServer
	if dnsServer == "" {
		dnsServer = cfg.Checks.DNSServer
	}
	res, err := resolve.New(dnsServer)
	if err != nil {
		return nil, fmt.Errorf("gateway: resolver: %w", err)
	}
	if o.tracer.On(trace.DNS) {
		res.Trace = traceDNS(o.tracer)
	}
	s := &Server{cfg: cfg, log: o.log, mapper: mapper, drain: o.drain, xmppLn: o.xmppLn, xmppAddr: cfg.XMPP.Listen,
		lanes: newLanes(DefaultMaxPending), met: o.metrics, view: presenceapi.NewView(presenceapi.DefaultMaxEntries)}
	s.partners.Store(partnerSet(cfg.XMPP.Federation))
	s.xs.met, s.ep.met = o.metrics, o.metrics

	var store sip.Store
	if o.stateDir != "" {
		if err := os.MkdirAll(o.stateDir, 0o700); err != nil {
			return nil, fmt.Errorf("gateway: state directory: %w (expected a writable directory, see --state-dir)", err)
		}
		bs, err := sip.OpenBoltStore(filepath.Join(o.stateDir, "subscriptions.db"))
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		s.store, store = bs, bs
	}
	fail := func(err error) (*Server, error) {
		if s.store != nil {
			s.store.Close()
		}
		return nil, err
	}

	sc, err := sip.FromConfig(cfg, sipSide{s}, store, o.log.With("side", "sip"))
	if err != nil {
		return fail(fmt.Errorf("gateway: %w", err))
	}
	sc.Resolver = res.NetResolver()
	sc.Tracer = o.tracer
	if o.sipListen != "" {
		sc.Listen = o.sipListen
		sc.Contact = "" // the bound address, since the test chose it
	}
	for _, f := range o.tuneSIP {
		f(&sc)
	}
	if s.ep.Endpoint, err = sip.New(sc); err != nil {
		return fail(fmt.Errorf("gateway: %w", err))
	}

	xc := xmpp.Config{
		Domains:        cfg.SIP.Domains,
		Resolver:       res,
		Federation:     cfg.XMPP.Federation,
		Open:           cfg.XMPP.Open,
		Deny:           cfg.XMPP.Deny,
		DialbackSecret: []byte(cfg.XMPP.DialbackSecret),
		MaxStanzaSize:  cfg.XMPP.MaxStanzaSize,
		Handler:        xmppSide{s},
		Logger:         o.log.With("side", "xmpp"),
		Tracer:         o.tracer,
		OnDialback:     o.metrics.Dialback,
	}
	if xc.TLS, err = s.xmppTLS(cfg, sc.Certificate); err != nil {
		s.ep.Close()
		return fail(fmt.Errorf("gateway: %w", err))
	}
	for _, f := range o.tuneXMPP {
		f(&xc)
	}
	if s.xs.Server, err = xmpp.New(xc); err != nil {
		s.ep.Close()
		return fail(fmt.Errorf("gateway: %w", err))
	}
	return s, nil
}

// xmppTLS is our identity toward XMPP peers: the certificate of
// tls.domains chosen by SNI, else tls.cert. It is read through
// GetCertificate from s.certs, so that Reload's new certificates serve the
// next handshake while established streams keep theirs. Peers'
// certificates verify against the system roots (RootCAs nil): tls.ca is the
// Edge's CA, not the federation's.
func (s *Server) xmppTLS(cfg *config.Config, main *tls.Certificate) (*tls.Config, error) {
	cs, err := loadCerts(cfg, main)
	if err != nil || cs == nil {
		return nil, err
	}
	s.certs.Store(cs)
	return &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		return s.certs.Load().pick(hello.ServerName), nil
	}}, nil
}

// certSet is our certificates toward XMPP peers.
type certSet struct {
	main     *tls.Certificate // tls.cert; nil when only tls.domains is set
	byDomain map[string]*tls.Certificate
}

// loadCerts reads tls.domains; main is tls.cert, already read. nil, nil
// when there is no certificate at all (no TLS).
func loadCerts(cfg *config.Config, main *tls.Certificate) (*certSet, error) {
	if main == nil && len(cfg.TLS.Domains) == 0 {
		return nil, nil
	}
	cs := &certSet{main: main, byDomain: map[string]*tls.Certificate{}}
	for _, d := range cfg.TLS.Domains {
		pair, err := tls.LoadX509KeyPair(cfg.Path(d.Cert), cfg.Path(d.Key))
		if err != nil {
			return nil, fmt.Errorf("tls.domains %s: %w (expected a PEM certificate and its private key)", d.Domain, err)
		}
		cs.byDomain[strings.ToLower(d.Domain)] = &pair
	}
	return cs, nil
}

// pick chooses the certificate for a server name: the domain's own, else
// tls.cert when it names the domain (or no name was asked), else nil;
// gateway/xmpp then offers no TLS for that domain.
func (cs *certSet) pick(name string) *tls.Certificate {
	if c := cs.byDomain[strings.ToLower(name)]; c != nil {
		return c
	}
	if cs.main != nil && (name == "" || cs.main.Leaf == nil || cs.main.Leaf.VerifyHostname(name) == nil) {
		return cs.main
	}
	return nil
}

// partnerSet is the configured partners' domains, lower case.
func partnerSet(ps []config.Partner) *map[string]bool {
	m := make(map[string]bool, len(ps))
	for _, p := range ps {
		m[strings.ToLower(p.Domain)] = true
	}
	return &m
}

// Listen binds xmpp.listen (unless a listener was injected) and the SIP
// listener. Serve calls it; call it first to learn the addresses.
func (s *Server) Listen() error {
	if s.xmppLn == nil {
		ln, err := net.Listen("tcp", s.xmppAddr)
		if err != nil {
			return fmt.Errorf("gateway: xmpp.listen %s: %w; expected a free local address this process may bind; stop the other process holding it or change xmpp.listen", s.xmppAddr, err)
		}
		s.xmppLn = ln
	}
	if err := s.ep.Listen(); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	return nil
}

// XMPPAddr is the bound s2s listener, nil before Listen.
func (s *Server) XMPPAddr() net.Addr {
	if s.xmppLn == nil {
		return nil
	}
	return s.xmppLn.Addr()
}

// SIPAddr is the bound SIP listener, nil before Listen.
func (s *Server) SIPAddr() net.Addr { return s.ep.Addr() }

// Streams lists the live s2s streams.
func (s *Server) Streams() []xmpp.StreamInfo { return s.xs.Streams() }

// Serve runs both sides until ctx ends or one fails. On ctx's end it stops
// gracefully and returns nil: new messages are refused (SIP 503, XMPP
// service-unavailable), those in flight get up to the drain timeout to be
// delivered or bounced, then the s2s streams close (system-shutdown),
// stanzas still queued for a stream are bounced to their SIP senders, and
// the SIP endpoint closes last. The first fatal error of either side stops
// both the same way and is returned. A Server serves once.
func (s *Server) Serve(ctx context.Context) error {
	again := true
	s.serveOnce.Do(func() { again = false })
	if again {
		return errors.New("gateway: Serve called twice")
	}
	if err := s.Listen(); err != nil {
		s.closeAll()
		return err
	}
	xctx, xcancel := context.WithCancel(context.Background())
	sctx, scancel := context.WithCancel(context.Background())
	defer xcancel()
	defer scancel()
	errc := make(chan error, 2)
	go func() { errc <- s.xs.Serve(xctx, s.xmppLn) }()
	go func() { errc <- s.ep.Serve(sctx) }()
	s.serving.Store(true)
	s.log.Info("gateway serving", "xmpp", s.XMPPAddr().String(), "sip", s.SIPAddr().String(),
		"domains", s.cfg.SIP.Domains, "edge", net.JoinHostPort(s.cfg.SIP.Edge.Host, fmt.Sprint(s.cfg.SIP.Edge.Port)))

	var fatal error
	pending := 2
	select {
	case <-ctx.Done():
		s.log.Info("gateway stopping", "reason", context.Cause(ctx))
	case fatal = <-errc:
		pending--
		if fatal == nil {
			fatal = errors.New("gateway: a side stopped serving without an error")
		}
		s.log.Error("gateway stopping", "reason", fatal)
	}

	// 1. Refuse new work, stop accepting s2s streams, let handlers finish.
	s.serving.Store(false)
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	xcancel()
	s.waitInflight()
	// 2. Close the streams; stanzas still queued are bounced through the
	// Handler to their SIP senders while the SIP side is up.
	dctx, dcancel := context.WithTimeout(context.Background(), s.drain)
	if err := s.xs.Shutdown(dctx); err != nil {
		s.log.Warn("xmpp streams did not close in time", "err", err)
	}
	dcancel()
	s.waitInflight()
	// 3. The SIP endpoint last.
	scancel()
	for ; pending > 0; pending-- {
		if err := <-errc; err != nil && fatal == nil {
			fatal = err
		}
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Warn("subscription store close", "err", err)
		}
	}
	s.log.Info("gateway stopped")
	return fatal
}

// closeAll releases what New and Listen took when Serve cannot run.
func (s *Server) closeAll() {
	if s.xmppLn != nil {
		s.xmppLn.Close()
	}
	s.xs.Close()
	s.ep.Close()
	if s.store != nil {
		s.store.Close()
	}
}

// Close releases a Server that was built but never served.
func (s *Server) Close() error {
	s.closeAll()
	return nil
}

// enter registers a handler call; false once the gateway drains.
// exit must follow a true.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.inflight.Add(1)
	return true
}

func (s *Server) exit() { s.inflight.Done() }

// waitInflight waits for handler calls, at most the drain timeout.
func (s *Server) waitInflight() {
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	t := time.NewTimer(s.drain)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Warn("gateway: messages still in flight after the drain timeout", "timeout", s.drain)
	}
}
