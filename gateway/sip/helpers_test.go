package sip_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	gwsip "github.com/xgw-gateway/xgw/gateway/sip"
	"github.com/xgw-gateway/xgw/internal/certtest"
	"github.com/xgw-gateway/xgw/internal/lab"
)

const (
	edgeName = "edge.litware.test"
	gwName   = "xgw.litware.test"
)

// pki is the test's certificates: one CA for the Edge and the gateway, a
// rogue client from the same CA, and an Edge look-alike from another CA.
type pki struct {
	ca, otherCA              *certtest.CA
	edge, gw, rogue, foreign *certtest.Pair
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca, other := certtest.NewCA(t, "Litware Test CA"), certtest.NewCA(t, "Other CA")
	lo := []net.IP{net.IPv4(127, 0, 0, 1)}
	return &pki{
		ca: ca, otherCA: other,
		edge:    ca.Issue(t, certtest.Leaf{CN: edgeName, DNSNames: []string{edgeName}, IPs: lo, ECDSA: true}),
		gw:      ca.Issue(t, certtest.Leaf{CN: gwName, DNSNames: []string{gwName}, IPs: lo, ECDSA: true}),
		rogue:   ca.Issue(t, certtest.Leaf{CN: "rogue.test", DNSNames: []string{"rogue.test"}, ECDSA: true}),
		foreign: other.Issue(t, certtest.Leaf{CN: edgeName, DNSNames: []string{edgeName}, ECDSA: true}),
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// edge is a sipgo user agent playing the Edge: it listens for the
// gateway's requests and sends its own to the gateway.
type edge struct {
	t      testing.TB
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client
	ln     net.Listener   // tls and tcp
	pc     net.PacketConn // udp
	tp     string         // TLS, TCP or UDP
	gwAddr string         // set by the test once the gateway listens
}

// startEdge listens on 127.0.0.1:0 with transport "tls", "tcp" or "udp"; the
// caller registers handlers on srv before requests arrive. clientCert is
// what the edge presents when it dials the gateway (nil: none).
func startEdge(t testing.TB, p *pki, transport string, serverCert, clientCert *certtest.Pair) *edge {
	t.Helper()
	var opts []sipgo.UserAgentOption
	if transport == "tls" {
		conf := &tls.Config{RootCAs: p.ca.Pool(), ServerName: gwName}
		if clientCert != nil {
			conf.Certificates = []tls.Certificate{clientCert.TLS}
		}
		opts = append(opts, sipgo.WithUserAgenTLSConfig(conf))
	}
	opts = append(opts, sipgo.WithUserAgent("edge"), sipgo.WithUserAgentHostname(edgeName),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(slog.New(slog.DiscardHandler))),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(slog.New(slog.DiscardHandler))))
	ua, err := sipgo.NewUA(opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua, sipgo.WithServerLogger(slog.New(slog.DiscardHandler)))
	client, _ := sipgo.NewClient(ua, sipgo.WithClientLogger(slog.New(slog.DiscardHandler)))
	e := &edge{t: t, ua: ua, srv: srv, client: client, tp: strings.ToUpper(transport)}
	if transport == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		e.pc = pc
		t.Cleanup(func() {
			pc.Close()
			ua.Close()
		})
		return e
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.ln = ln
	if transport == "tls" {
		e.ln = tls.NewListener(ln, &tls.Config{
			Certificates: []tls.Certificate{serverCert.TLS},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    p.ca.Pool(),
		})
	}
	t.Cleanup(func() {
		e.ln.Close()
		ua.Close()
	})
	return e
}

// serve starts accepting; call after registering handlers.
func (e *edge) serve() {
	switch e.tp {
	case "TLS":
		go e.srv.ServeTLS(e.ln)
	case "UDP":
		go e.srv.ServeUDP(e.pc)
	default:
		go e.srv.ServeTCP(e.ln)
	}
}

func (e *edge) port() int {
	if e.pc != nil {
		return e.pc.LocalAddr().(*net.UDPAddr).Port
	}
	return e.ln.Addr().(*net.TCPAddr).Port
}

// do sends req to the gateway and waits up to 3 s for the final response.
func (e *edge) do(req *sip.Request) (*sip.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req.SetTransport(e.tp)
	req.SetDestination(e.gwAddr)
	return e.client.Do(ctx, req)
}

// mustDo is do that fails the test without a final response.
func (e *edge) mustDo(req *sip.Request) *sip.Response {
	e.t.Helper()
	res, err := e.do(req)
	if err != nil {
		e.t.Fatalf("%s: %v", req.Method, err)
	}
	return res
}

// request builds a request from the Edge to a gateway user.
func (e *edge) request(method sip.RequestMethod, to string) *sip.Request {
	var uri sip.Uri
	if err := sip.ParseUri(to, &uri); err != nil {
		e.t.Fatal(err)
	}
	req := sip.NewRequest(method, uri)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "litware.test"}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: uri, Params: sip.NewParams()})
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1", Port: e.port(), UriParams: sip.NewParams()}})
	return req
}

// record is what the test Handler saw.
type call struct {
	change gwsip.Change
	sub    gwsip.Subscription
	req    *sip.Request
	reason string
}

// handler is a Handler whose answers the test chooses.
type handler struct {
	message   func(ctx context.Context, req *sip.Request) (int, string)
	subscribe func(ctx context.Context, c gwsip.Change, s gwsip.Subscription) gwsip.Answer
	notify    func(ctx context.Context, s gwsip.Subscription, req *sip.Request) int

	messages, subscribes, notifies, ended chan call
}

func newHandler() *handler {
	return &handler{
		messages: make(chan call, 16), subscribes: make(chan call, 16),
		notifies: make(chan call, 16), ended: make(chan call, 16),
	}
}

func (h *handler) HandleMessage(ctx context.Context, req *sip.Request) (int, string) {
	h.messages <- call{req: req}
	if h.message != nil {
		return h.message(ctx, req)
	}
	return 200, ""
}

func (h *handler) HandleSubscribe(ctx context.Context, c gwsip.Change, s gwsip.Subscription) gwsip.Answer {
	h.subscribes <- call{change: c, sub: s}
	if h.subscribe != nil {
		return h.subscribe(ctx, c, s)
	}
	return gwsip.Answer{Status: 200, ContentType: "application/pidf+xml", Body: []byte(pidf("open"))}
}

func (h *handler) HandleNotify(ctx context.Context, s gwsip.Subscription, req *sip.Request) int {
	h.notifies <- call{sub: s, req: req}
	if h.notify != nil {
		return h.notify(ctx, s, req)
	}
	return 200
}

func (h *handler) HandleEnded(_ context.Context, s gwsip.Subscription, reason string) {
	h.ended <- call{sub: s, reason: reason}
}

func pidf(basic string) string {
	return `<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:romeo@xmpp.test"><tuple id="t1"><status><basic>` + basic + `</basic></status></tuple></presence>`
}

// next takes one call from ch or fails after 5 s.
func next(t *testing.T, ch chan call, what string) call {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5s", what)
		return call{}
	}
}

// gateway starts an Endpoint toward ed and wires ed to it. The returned
// stop closes it and waits for Serve to return.
func gateway(t testing.TB, p *pki, ed *edge, h gwsip.Handler, mod func(*gwsip.Config)) (*gwsip.Endpoint, *lab.LogBuffer, func()) {
	t.Helper()
	logs := &lab.LogBuffer{}
	cfg := gwsip.Config{
		Domains:           []string{"xmpp.test"},
		Listen:            "127.0.0.1:0",
		Edge:              gwsip.Edge{Host: "127.0.0.1", Port: ed.port(), Transport: strings.ToLower(ed.tp), Name: edgeName},
		Certificate:       &p.gw.TLS,
		RootCAs:           p.ca.Pool(),
		Handler:           h,
		Logger:            slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		KeepaliveInterval: -1,
		HandlerTimeout:    2 * time.Second,
		RequestTimeout:    3 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	ep, err := gwsip.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Listen(); err != nil {
		t.Fatal(err)
	}
	ed.gwAddr = ep.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ep.Serve(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Serve did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return ep, logs, stop
}

func uri(t testing.TB, s string) sip.Uri {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		t.Fatal(err)
	}
	return u
}

func hdr(m interface{ GetHeader(string) sip.Header }, name string) string {
	if h := m.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

func itoa(n int) string { return strconv.Itoa(n) }
