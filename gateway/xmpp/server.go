package xmpp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/gateway/trace"
	"github.com/xgw-gateway/xgw/internal/resolve"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxStanzaSize      = config.DefaultMaxStanzaSize // 256 KiB
	DefaultNegotiationTimeout = 30 * time.Second
	DefaultIdleTimeout        = 10 * time.Minute
	DefaultConnectTimeout     = 10 * time.Second
	DefaultMaxStreams         = 1000 // Lync's default for the XMPP gateway
	DefaultMaxStreamsPerPeer  = 20   // Lync's default per partner
	DefaultQueueSize          = 100
	// writeTimeout bounds one write so a peer that stops reading cannot
	// hold a sender forever.
	writeTimeout = 30 * time.Second
	// maxPendingDialback bounds verifications in flight per inbound stream,
	// so one peer cannot make us open many verify connections.
	maxPendingDialback = 8
)

// Handler receives inbound message and presence stanzas (and iq results
// and errors) addressed to a user at one of our domains; the SIP side
// implements it. Calls come from the stream's reader, one at a time per
// stream, so a slow Handler slows only that peer.
type Handler interface {
	// HandleInbound gets a stanza whose sender was authenticated and whose
	// recipient is user@<one of Config.Domains>. Returning an *Error
	// bounces the stanza to its sender with that condition; any other
	// error bounces it with internal-server-error. It is also called with
	// type='error' bounces of stanzas the pool could not deliver.
	HandleInbound(ctx context.Context, st *Stanza) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, st *Stanza) error

// HandleInbound calls f.
func (f HandlerFunc) HandleInbound(ctx context.Context, st *Stanza) error { return f(ctx, st) }

// Config configures a Server. Zero durations and limits take the defaults above.
type Config struct {
	// Domains are our SIP domains, served as XMPP domains (virtual hosting).
	Domains []string
	// TLS is the server side: GetCertificate (by SNI) or Certificates give
	// our certificate per domain, also presented as client certificate on
	// outbound streams; RootCAs verifies peers (nil: system roots). nil
	// disables STARTTLS and SASL EXTERNAL.
	TLS *tls.Config
	// Resolver finds remote servers (SRV, A/AAAA). Required for outbound.
	Resolver *resolve.Resolver
	// Federation is the allow list with each partner's auth mode.
	Federation []config.Partner
	// Open admits unlisted domains that authenticate with at least dialback.
	Open bool
	// Deny refuses these domains even when listed or Open.
	Deny []string
	// DialbackSecret keys XEP-0185 dialback keys; empty means random per
	// process. Servers sharing a domain must share it.
	DialbackSecret []byte
	MaxStanzaSize  int
	// NegotiationTimeout bounds a stream from TCP accept/connect to
	// authenticated; IdleTimeout closes a stream with no traffic.
	NegotiationTimeout, IdleTimeout, ConnectTimeout time.Duration
	// MaxStreams bounds streams in total, MaxStreamsPerPeer per remote
	// domain, both directions. Dialback verify connections count too:
	// leave headroom, or peers cannot verify our outbound streams.
	MaxStreams, MaxStreamsPerPeer int
	// QueueSize bounds stanzas waiting for an outbound stream.
	QueueSize int
	// Handler gets inbound stanzas; nil refuses them with service-unavailable.
	Handler Handler
	Logger  *slog.Logger
	// OnDialback, when set, is told each dialback outcome: direction "in"
	// (a peer's claim we verified) or "out" (ours), result "valid",
	// "invalid" or "error" (metrics).
	OnDialback func(direction, result string)
	// Dial opens TCP connections (nil: net.Dialer with ConnectTimeout).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Tracer records every stream header, element and stanza read or
	// written, after TLS (nil: no trace, no cost).
	Tracer *trace.Tracer
}

// Server is the s2s endpoint for all our domains.
type Server struct {
	cfg     Config
	log     *slog.Logger
	domains map[string]bool
	pol     *policy
	keys    *keyring
	srvTLS  *tls.Config

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex // guards the following
	live      map[tracked]struct{}
	perPeer   map[string]int
	out       map[pair]*outStream
	listeners map[net.Listener]struct{}
	closed    bool
}

// pair is a domain pair: local is ours, remote the federated domain.
type pair struct{ local, remote string }

// tracked is a stream the Server can list and shut down.
type tracked interface {
	info() StreamInfo
	shutdown()
}

// StreamInfo describes one live stream (for tests, logs and checks).
type StreamInfo struct {
	Direction string // "in", "out" or "verify"
	Peer      string // remote address
	Local     string // our domain in the stream header
	Remote    string // the peer's domain in the stream header
	// Authenticated lists the remote domains authenticated on the stream
	// as "remote->local" pairs.
	Authenticated []string
	Auth          string // "dialback", "sasl-external" or ""
	TLS           bool
	// PeerCertValid: the peer's certificate chains to RootCAs and names
	// its domain (RFC 6125).
	PeerCertValid bool
}

// New checks cfg and returns a Server; nothing listens or dials yet.
func New(cfg Config) (*Server, error) {
	if len(cfg.Domains) == 0 {
		return nil, errors.New("xmpp: Config.Domains is empty, expected at least one SIP domain to serve")
	}
	c := cfg
	if c.MaxStanzaSize <= 0 {
		c.MaxStanzaSize = DefaultMaxStanzaSize
	}
	if c.NegotiationTimeout <= 0 {
		c.NegotiationTimeout = DefaultNegotiationTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.MaxStreamsPerPeer <= 0 {
		c.MaxStreamsPerPeer = DefaultMaxStreamsPerPeer
	}
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(c.DialbackSecret) == 0 {
		c.DialbackSecret = make([]byte, 32)
		rand.Read(c.DialbackSecret)
	}
	s := &Server{
		cfg:       c,
		log:       c.Logger,
		domains:   map[string]bool{},
		keys:      newKeyring(c.DialbackSecret),
		live:      map[tracked]struct{}{},
		perPeer:   map[string]int{},
		out:       map[pair]*outStream{},
		listeners: map[net.Listener]struct{}{},
	}
	for _, d := range c.Domains {
		s.domains[strings.ToLower(d)] = true
	}
	pol, err := newPolicy(c.Federation, c.Open, c.Deny, s.domains)
	if err != nil {
		return nil, err
	}
	s.pol = pol
	if c.TLS != nil {
		s.srvTLS = c.TLS.Clone()
		// Ask for the peer's certificate but verify it ourselves: an
		// unverifiable one still allows dialback (XEP-0178 §3, XEP-0220).
		s.srvTLS.ClientAuth = tls.RequestClientCert
		if s.srvTLS.MinVersion == 0 {
			s.srvTLS.MinVersion = tls.VersionTLS12
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// serves reports whether domain is one of ours.
func (s *Server) serves(domain string) bool { return s.domains[strings.ToLower(domain)] }

// Serve accepts s2s streams on ln until ctx ends or Shutdown is called; it
// closes ln before returning.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return net.ErrClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || s.isClosed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("xmpp: accept on %s: %w", ln.Addr(), err)
		}
		if !s.add() {
			conn.Close()
			continue
		}
		go func() {
			defer s.wg.Done()
			s.serveInbound(conn)
		}()
	}
}

// ServeDirectTLS accepts XEP-0368 direct TLS streams (port 5270,
// _xmpps-server._tcp) on ln, a plain TCP listener: TLS is negotiated with
// Config.TLS and ALPN "xmpp-server" before the stream starts.
func (s *Server) ServeDirectTLS(ctx context.Context, ln net.Listener) error {
	if s.srvTLS == nil {
		ln.Close()
		return errors.New("xmpp: ServeDirectTLS needs Config.TLS with a certificate")
	}
	c := s.srvTLS.Clone()
	c.NextProtos = []string{"xmpp-server"}
	return s.Serve(ctx, tls.NewListener(ln, c))
}

// add registers a goroutine that Shutdown waits for; false once closed.
func (s *Server) add() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track counts a stream against the limits under peerKey ("" for only the
// total). It returns false, counting nothing, when a limit is reached.
func (s *Server) track(t tracked, peerKey string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.live) >= s.cfg.MaxStreams {
		return false
	}
	if peerKey != "" && s.perPeer[peerKey] >= s.cfg.MaxStreamsPerPeer {
		return false
	}
	s.live[t] = struct{}{}
	if peerKey != "" {
		s.perPeer[peerKey]++
	}
	return true
}

// retrack moves a stream's per-peer count to peerKey (once the domain is known).
func (s *Server) retrack(oldKey, newKey string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if oldKey == newKey {
		return true
	}
	if s.perPeer[newKey] >= s.cfg.MaxStreamsPerPeer {
		return false
	}
	s.dropPeerLocked(oldKey)
	s.perPeer[newKey]++
	return true
}

func (s *Server) untrack(t tracked, peerKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.live, t)
	s.dropPeerLocked(peerKey)
}

func (s *Server) dropPeerLocked(k string) {
	if k == "" {
		return
	}
	if s.perPeer[k]--; s.perPeer[k] <= 0 {
		delete(s.perPeer, k)
	}
}

// Streams lists the live streams.
func (s *Server) Streams() []StreamInfo {
	s.mu.Lock()
	ts := make([]tracked, 0, len(s.live))
	for t := range s.live {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	out := make([]StreamInfo, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.info())
	}
	slices.SortFunc(out, func(a, b StreamInfo) int {
		return strings.Compare(a.Direction+a.Local+a.Remote+a.Peer, b.Direction+b.Local+b.Remote+b.Peer)
	})
	return out
}

// RotateSecret makes secret the dialback secret; keys made with the
// previous one stay valid (one generation), so dialbacks in flight finish.
func (s *Server) RotateSecret(secret []byte) { s.keys.rotate(secret) }

// Shutdown stops listening, closes every stream (inbound ones with a
// system-shutdown stream error) and waits for their goroutines until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		for ln := range s.listeners {
			ln.Close()
		}
	}
	ts := make([]tracked, 0, len(s.live))
	for t := range s.live {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	s.cancel()
	for _, t := range ts {
		t.shutdown()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close is Shutdown without waiting.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
