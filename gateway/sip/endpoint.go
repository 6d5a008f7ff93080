package sip

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/xgw-gateway/xgw/gateway/trace"
)

// Methods we implement, for Allow headers and 405 answers.
var allowed = []string{"MESSAGE", "SUBSCRIBE", "NOTIFY", "OPTIONS"}

// Endpoint is the gateway's SIP user agent: a listener for the Edge, a
// client through the Edge, and the subscription dialogs between them.
type Endpoint struct {
	cfg    Config
	log    *slog.Logger
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client

	edgeAddr string // HOST:PORT of the Edge, the destination of every out-of-dialog request
	edgeTP   string // transport to the Edge in sipgo's spelling (TLS, TCP, UDP)

	// sem bounds the requests handled at once; a slot is held until the
	// handler returns, even after a timeout answered for it.
	sem chan struct{}

	listenMu sync.Mutex
	ln       net.Listener
	pc       net.PacketConn
	contact  sip.Uri // our Contact, set once listening

	dialogs dialogTable
	health  health
	resumed chan struct{}             // closed once Serve reloaded the Store
	id      *atomic.Pointer[identity] // our certificate and tls.ca (SetTLS)

	// base ends when the endpoint closes; timers and keepalive use it.
	base      context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup // background work: timers, follow-up NOTIFYs, keepalive
	wgMu      sync.Mutex     // orders wg.Add against Close's wg.Wait
	closing   bool           // guarded by wgMu
	closeOnce sync.Once
	closeErr  error
}

// New checks cfg and builds an Endpoint. Nothing is bound until Listen or
// Serve.
func New(cfg Config) (*Endpoint, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	parser := sip.NewParser()
	parser.MaxMessageLength = cfg.MaxMessageSize
	opts := []sipgo.UserAgentOption{
		sipgo.WithUserAgent("xgw"),
		sipgo.WithUserAgentParser(parser),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log.With("sipgo", "transport"))),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log.With("sipgo", "transaction"))),
	}
	if len(cfg.Domains) > 0 {
		opts = append(opts, sipgo.WithUserAgentHostname(cfg.Domains[0]))
	}
	if cfg.Resolver != nil {
		opts = append(opts, sipgo.WithUserAgentDNSResolver(cfg.Resolver))
	}
	id := &atomic.Pointer[identity]{}
	id.Store(&identity{cert: cfg.Certificate, roots: cfg.RootCAs})
	if cfg.Certificate != nil && cfg.RootCAs != nil {
		opts = append(opts, sipgo.WithUserAgenTLSConfig(clientTLS(cfg, id)))
	}
	ua, err := sipgo.NewUA(opts...)
	if err != nil {
		return nil, fmt.Errorf("sip: user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log.With("sipgo", "server")))
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("sip: server: %w", err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientLogger(log.With("sipgo", "client")))
	if err != nil {
		ua.Close()
		return nil, fmt.Errorf("sip: client: %w", err)
	}
	base, cancel := context.WithCancel(context.Background())
	e := &Endpoint{
		cfg:      cfg,
		log:      log,
		ua:       ua,
		srv:      srv,
		client:   client,
		edgeAddr: net.JoinHostPort(cfg.Edge.Host, strconv.Itoa(cfg.Edge.Port)),
		edgeTP:   strings.ToUpper(cfg.Edge.Transport),
		sem:      make(chan struct{}, cfg.MaxConcurrent),
		base:     base,
		cancel:   cancel,
		resumed:  make(chan struct{}),
		id:       id,
	}
	e.dialogs.init()
	if cfg.Tracer.On(trace.SIP) {
		client.TxRequester = tracingRequester{e, ua.TransactionLayer()}
	}
	srv.OnMessage(e.handle(e.onMessage))
	srv.OnSubscribe(e.handle(e.onSubscribe))
	srv.OnNotify(e.handle(e.onNotify))
	srv.OnOptions(e.handle(e.onOptions))
	srv.OnNoRoute(e.handle(e.onOther))
	return e, nil
}

// bindFix says what a failed bind expected and how to fix it.
const bindFix = "expected a free local address this process may bind; stop the other process holding it or change sip.listen"

// Listen binds cfg.Listen with cfg.ListenTransport. Serve calls it when it
// was not called before; call it first to learn the bound address.
func (e *Endpoint) Listen() error {
	e.listenMu.Lock()
	defer e.listenMu.Unlock()
	if e.ln != nil || e.pc != nil {
		return nil
	}
	var addr net.Addr
	switch e.cfg.ListenTransport {
	case "udp":
		pc, err := net.ListenPacket("udp", e.cfg.Listen)
		if err != nil {
			return fmt.Errorf("sip: sip.listen udp %s: %w; %s", e.cfg.Listen, err, bindFix)
		}
		e.pc = newGuardPacketConn(pc, e.limits(), e.log)
		addr = pc.LocalAddr()
	default:
		ln, err := net.Listen("tcp", e.cfg.Listen)
		if err != nil {
			return fmt.Errorf("sip: sip.listen %s %s: %w; %s", e.cfg.ListenTransport, e.cfg.Listen, err, bindFix)
		}
		addr = ln.Addr()
		if e.cfg.ListenTransport == "tls" {
			ln = tls.NewListener(ln, serverTLS(e.cfg, e.id, e.log))
		}
		e.ln = newGuardListener(ln, e.limits(), e.log)
	}
	contact := e.cfg.Contact
	if contact == "" {
		if ip := addrIP(addr); ip == nil || ip.IsUnspecified() {
			e.closeListenerLocked()
			return fmt.Errorf("sip: listening on %s needs Config.Contact, the HOST:PORT the Edge reaches us at (xmpp.internal_fqdn)", addr)
		}
		contact = addr.String()
	}
	host, port, err := net.SplitHostPort(contact)
	if err != nil {
		e.closeListenerLocked()
		return fmt.Errorf("sip: contact %q: %w (expected HOST:PORT)", contact, err)
	}
	p, _ := strconv.Atoi(port)
	e.contact = sip.Uri{Scheme: "sip", User: "xgw", Host: host, Port: p, UriParams: sip.NewParams()}
	e.contact.UriParams.Add("transport", e.cfg.ListenTransport)
	e.log.Info("sip: listening", "transport", e.cfg.ListenTransport, "addr", addr.String(), "edge", e.edgeAddr)
	return nil
}

func (e *Endpoint) closeListenerLocked() {
	if e.ln != nil {
		e.ln.Close()
		e.ln = nil
	}
	if e.pc != nil {
		e.pc.Close()
		e.pc = nil
	}
}

func addrIP(a net.Addr) net.IP {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP
	case *net.UDPAddr:
		return a.IP
	}
	return nil
}

// Addr is the bound listener address, nil before Listen.
func (e *Endpoint) Addr() net.Addr {
	e.listenMu.Lock()
	defer e.listenMu.Unlock()
	switch {
	case e.ln != nil:
		return e.ln.Addr()
	case e.pc != nil:
		return e.pc.LocalAddr()
	}
	return nil
}

// Serve reloads persisted subscriptions, starts the keepalive and serves
// the listener until ctx ends; then it closes the endpoint and returns nil.
func (e *Endpoint) Serve(ctx context.Context) error {
	if err := e.Listen(); err != nil {
		return err
	}
	if err := e.resume(ctx); err != nil {
		return err
	}
	select {
	case <-e.resumed: // a second Serve
	default:
		close(e.resumed)
	}
	if e.cfg.KeepaliveInterval > 0 {
		e.goTracked(func() { e.keepalive(e.base) })
	}
	errc := make(chan error, 1)
	go func() {
		switch {
		case e.pc != nil:
			errc <- e.srv.ServeUDP(e.pc)
		case e.cfg.ListenTransport == "tls":
			errc <- e.srv.ServeTLS(e.ln)
		default:
			errc <- e.srv.ServeTCP(e.ln)
		}
	}()
	select {
	case <-ctx.Done():
		e.Close()
		<-errc
		return nil
	case err := <-errc:
		e.Close()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		return fmt.Errorf("sip: serve: %w", err)
	}
}

// Resumed is closed once Serve has reloaded the Store: from then on
// Subscriptions lists the dialogs kept from the previous run. Requests
// from the Edge are only handled after that; the gateway's other side
// waits on it.
func (e *Endpoint) Resumed() <-chan struct{} { return e.resumed }

// Close stops timers and the keepalive, closes the listener and every
// connection. Subscriptions stay in the Store for the next start. Calling
// it again does nothing.
func (e *Endpoint) Close() error {
	e.closeOnce.Do(func() {
		e.wgMu.Lock()
		e.closing = true
		e.wgMu.Unlock()
		e.cancel()
		e.dialogs.stopTimers()
		e.listenMu.Lock()
		if e.ln != nil {
			e.ln.Close()
		}
		if e.pc != nil {
			e.pc.Close()
		}
		e.listenMu.Unlock()
		e.wg.Wait()
		e.closeErr = e.ua.Close()
	})
	return e.closeErr
}

// goTracked runs f in a goroutine Close waits for; after Close it does
// nothing.
func (e *Endpoint) goTracked(f func()) {
	if !e.track() {
		return
	}
	go func() {
		defer e.wg.Done()
		f()
	}()
}

// track counts one piece of background work unless Close has begun; the
// caller calls e.wg.Done when it reports true.
func (e *Endpoint) track() bool {
	e.wgMu.Lock()
	defer e.wgMu.Unlock()
	if e.closing {
		return false
	}
	e.wg.Add(1)
	return true
}

// handle adapts a request function to sipgo: it bounds concurrency, gives
// the function a deadline and always answers. fn returns the response and
// an optional follow-up run after the response is sent (e.g. the NOTIFY
// that must follow a SUBSCRIBE's 200).
func (e *Endpoint) handle(fn func(ctx context.Context, req *sip.Request) (*sip.Response, func())) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		e.trace(trace.In, req)
		select {
		case e.sem <- struct{}{}:
		default:
			res := sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
			res.AppendHeader(sip.NewHeader("Retry-After", "5"))
			e.log.Warn("sip: request refused, too many in flight", "method", req.Method, "call-id", callID(req), "limit", e.cfg.MaxConcurrent)
			e.respond(tx, res)
			return
		}
		defer func() { <-e.sem }()
		// fn runs on sipgo's goroutine (one per request already): a second
		// goroutine per request cost stack growth and a channel hand-off.
		// When ctx ends first (deadline or Close), the AfterFunc answers 504
		// and fn's late answer is dropped; the slot stays held until fn
		// returns.
		ctx, cancel := context.WithTimeout(e.base, e.cfg.HandlerTimeout)
		defer cancel()
		timedOut := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(timedOut)
			// RFC 3261 §21.5.5: 504, the gateway got no timely answer
			// from the side it serves.
			e.log.Warn("sip: handler timed out", "method", req.Method, "call-id", callID(req), "timeout", e.cfg.HandlerTimeout)
			e.respond(tx, sip.NewResponseFromRequest(req, 504, "Server Time-out", nil))
		})
		res, after := fn(ctx, req)
		if !stop() {
			// The 504 went out instead; wait for it, sipgo ends the
			// transaction when we return.
			<-timedOut
			return
		}
		e.respond(tx, res)
		if after != nil {
			e.goTracked(after)
		}
	}
}

func (e *Endpoint) respond(tx sip.ServerTransaction, res *sip.Response) {
	if err := tx.Respond(res); err != nil {
		e.log.Warn("sip: sending response failed", "status", res.StatusCode, "call-id", callIDOf(res), "err", err)
		return
	}
	e.trace(trace.Out, res)
	if res.StatusCode >= 300 {
		e.log.Info("sip: request failed", "status", res.StatusCode, "reason", res.Reason, "cseq", res.CSeq().Value(), "call-id", callIDOf(res))
	}
}

// reply builds a response with the standard reason phrase when reason is
// empty.
func reply(req *sip.Request, status int, reason string) *sip.Response {
	if reason == "" {
		reason = reasonPhrase(status)
	}
	return sip.NewResponseFromRequest(req, status, reason, nil)
}

// onOptions answers OPTIONS with what we implement (RFC 3261 §11.2).
func (e *Endpoint) onOptions(_ context.Context, req *sip.Request) (*sip.Response, func()) {
	res := reply(req, 200, "")
	e.addCapabilities(res)
	return res, nil
}

func (e *Endpoint) addCapabilities(res *sip.Response) {
	res.AppendHeader(sip.NewHeader("Allow", strings.Join(allowed, ", ")))
	res.AppendHeader(sip.NewHeader("Accept", strings.Join(e.cfg.Accept, ", ")))
	res.AppendHeader(sip.NewHeader("Supported", ""))
	res.AppendHeader(sip.NewHeader("Allow-Events", strings.Join(e.cfg.Events, ", ")))
}

// onOther answers methods we do not implement (INVITE, BYE, PUBLISH...).
func (e *Endpoint) onOther(_ context.Context, req *sip.Request) (*sip.Response, func()) {
	res := reply(req, 405, "")
	res.AppendHeader(sip.NewHeader("Allow", strings.Join(allowed, ", ")))
	return res, nil
}

func callID(req *sip.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

func callIDOf(res *sip.Response) string {
	if h := res.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

func reasonPhrase(status int) string {
	switch status {
	case 200:
		return "OK"
	case 202:
		return "Accepted"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 413:
		return "Request Entity Too Large"
	case 415:
		return "Unsupported Media Type"
	case 423:
		return "Interval Too Brief"
	case 480:
		return "Temporarily Unavailable"
	case 481:
		return "Call/Transaction Does Not Exist"
	case 489:
		return "Bad Event"
	case 500:
		return "Server Internal Error"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Server Time-out"
	case 513:
		return "Message Too Large"
	}
	switch {
	case status < 300:
		return "OK"
	case status < 400:
		return "Redirect"
	case status < 500:
		return "Client Error"
	case status < 600:
		return "Server Error"
	}
	return "Global Failure"
}
