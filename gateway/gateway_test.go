package gateway_test

// The gateway on loopback with in-process peers, runnable anywhere (no
// namespace): a sipgo user agent plays the Edge over TCP, a second
// gateway/xmpp Server plays the federated domain peer.test, and an
// in-process DNS server publishes both. e2e_test.go does the same against
// Kamailio, sipp and Prosody.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"mellium.im/xmpp/jid"

	"github.com/xgw-gateway/xgw/gateway"
	"github.com/xgw-gateway/xgw/gateway/config"
	gwsip "github.com/xgw-gateway/xgw/gateway/sip"
	"github.com/xgw-gateway/xgw/gateway/xmpp"
	"github.com/xgw-gateway/xgw/internal/dnstest"
	"github.com/xgw-gateway/xgw/internal/lab"
	"github.com/xgw-gateway/xgw/internal/resolve"
)

type loop struct {
	t       *testing.T
	srv     *gateway.Server
	peer    *xmpp.Server
	peerIn  chan *xmpp.Stanza
	edgeIn  chan *sip.Request
	client  *sipgo.Client
	sipAddr string
	logs    *lab.LogBuffer
	stop    context.CancelFunc
	served  chan error
	// slowHold, when set, holds the Edge's answer for slow@litware.test
	// until the channel is closed, instead of the usual 1 s.
	slowHold atomic.Pointer[chan struct{}]
}

// startLoop runs the gateway for litware.test. The peer refuses messages
// to nobody@peer.test with item-not-found; the Edge answers 404 for
// ghost@litware.test, 200 after 1 s (or once l.slowHold is released) for
// slow@litware.test and 200 at once otherwise. opts come after the loop's own gateway options.
func startLoop(t *testing.T, opts ...gateway.Option) *loop {
	t.Helper()
	gwLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peerLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// silent.test accepts connections and never says a word.
	silentLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silentLn.Close() })
	go func() {
		for {
			c, err := silentLn.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	dns := dnstest.Start(t, "127.0.0.1:0", "test", fmt.Sprintf(`$ORIGIN test.
peer                      60 IN A   127.0.0.1
_xmpp-server._tcp.peer    60 IN SRV 0 5 %d peer.test.
silent                    60 IN A   127.0.0.1
_xmpp-server._tcp.silent  60 IN SRV 0 5 %d silent.test.
litware                   60 IN A   127.0.0.1
_xmpp-server._tcp.litware 60 IN SRV 0 5 %d litware.test.
`, peerLn.Addr().(*net.TCPAddr).Port, silentLn.Addr().(*net.TCPAddr).Port, gwLn.Addr().(*net.TCPAddr).Port))
	res, err := resolve.New(dns.Addr)
	if err != nil {
		t.Fatal(err)
	}
	l := &loop{t: t, peerIn: make(chan *xmpp.Stanza, 16), edgeIn: make(chan *sip.Request, 16), logs: &lab.LogBuffer{}}

	l.peer, err = xmpp.New(xmpp.Config{Domains: []string{"peer.test"}, Resolver: res,
		Federation: []config.Partner{{Domain: "litware.test", Auth: config.AuthDialback}},
		Handler: xmpp.HandlerFunc(func(_ context.Context, st *xmpp.Stanza) error {
			l.peerIn <- st
			if st.To.Localpart() == "nobody" {
				return &xmpp.Error{Type: xmpp.ErrorTypeCancel, Condition: xmpp.CondItemNotFound, Text: "no such user"}
			}
			return nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	go l.peer.Serve(context.Background(), peerLn)
	t.Cleanup(func() { l.peer.Close() })

	// The Edge.
	edgeLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("edge"), sipgo.WithUserAgentHostname("litware.test"),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)))
	if err != nil {
		t.Fatal(err)
	}
	edge, _ := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	l.client, _ = sipgo.NewClient(ua, sipgo.WithClientLogger(quiet))
	edge.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		l.edgeIn <- req
		status, reason := 200, "OK"
		switch req.Recipient.User {
		case "ghost":
			status, reason = 404, "Not Found"
		case "slow":
			if hold := l.slowHold.Load(); hold != nil {
				select {
				case <-*hold:
				case <-time.After(time.Minute): // the test failed before releasing
				}
			} else {
				time.Sleep(time.Second)
			}
		}
		tx.Respond(sip.NewResponseFromRequest(req, status, reason, nil))
	})
	go edge.ServeTCP(edgeLn)
	t.Cleanup(func() { edgeLn.Close(); ua.Close() })

	cfg := &config.Config{
		SIP: config.SIP{Domains: []string{"litware.test"},
			Edge: config.Edge{Host: "127.0.0.1", Port: edgeLn.Addr().(*net.TCPAddr).Port, Transport: "tcp"}},
		XMPP: config.XMPP{Federation: []config.Partner{{Domain: "peer.test", Auth: config.AuthDialback},
			{Domain: "silent.test", Auth: config.AuthDialback}}},
	}
	base := []gateway.Option{gateway.WithXMPPListener(gwLn), gateway.WithSIPListen("127.0.0.1:0"),
		gateway.WithDNSServer(dns.Addr), gateway.WithStateDir(t.TempDir()), gateway.WithDrainTimeout(3 * time.Second),
		gateway.WithLogger(slog.New(slog.NewTextHandler(l.logs, nil))),
		gateway.WithSIPConfig(func(c *gwsip.Config) { c.KeepaliveInterval = -1 })}
	l.srv, err = gateway.New(cfg, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.srv.Listen(); err != nil {
		t.Fatal(err)
	}
	l.sipAddr = l.srv.SIPAddr().String()
	ctx, stop := context.WithCancel(context.Background())
	l.stop, l.served = stop, make(chan error, 1)
	go func() { l.served <- l.srv.Serve(ctx) }()
	t.Cleanup(func() {
		l.shutdown()
		if t.Failed() {
			t.Logf("gateway log:\n%s", l.logs.String())
		}
	})
	return l
}

// shutdown stops the gateway and reports Serve's result (once).
func (l *loop) shutdown() {
	if l.stop == nil {
		return
	}
	l.stop()
	l.stop = nil
	select {
	case err := <-l.served:
		if err != nil {
			l.t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		l.t.Errorf("Serve did not return 10 s after its context ended")
	}
}

// sipMessage sends a MESSAGE from alice@litware.test and returns the status.
func (l *loop) sipMessage(to, contentType, body string) int {
	l.t.Helper()
	var uri sip.Uri
	if err := sip.ParseUri("sip:"+to, &uri); err != nil {
		l.t.Fatal(err)
	}
	req := sip.NewRequest(sip.MESSAGE, uri)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "litware.test"}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: uri, Params: sip.NewParams()})
	ct := sip.ContentTypeHeader(contentType)
	req.AppendHeader(&ct)
	req.SetBody([]byte(body))
	req.SetTransport("TCP")
	req.SetDestination(l.sipAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := l.client.Do(ctx, req)
	if err != nil {
		l.t.Fatalf("MESSAGE to %s: %v", to, err)
	}
	return res.StatusCode
}

func (l *loop) xmppMessage(from, to, inner string) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st := &xmpp.Stanza{Name: "message", From: jid.MustParse(from), To: jid.MustParse(to), Type: "chat", ID: "m1", Inner: []byte(inner)}
	if err := l.peer.Send(ctx, st); err != nil {
		l.t.Fatal(err)
	}
}

func recv[T any](t *testing.T, ch chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10 s", what)
		var zero T
		return zero
	}
}

func TestLoopback(t *testing.T) {
	l := startLoop(t)
	const isComposing = `<?xml version="1.0" encoding="UTF-8"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state></isComposing>`

	t.Run("SIP to XMPP", func(t *testing.T) {
		if got := l.sipMessage("bob@peer.test", "text/plain;charset=UTF-8", "héllo 世界 😀"); got != 200 {
			t.Fatalf("status %d, want 200", got)
		}
		st := recv(t, l.peerIn, "stanza at the peer")
		if st.From.String() != "alice@litware.test" || !strings.Contains(string(st.Inner), "<body>héllo 世界 😀</body>") {
			t.Errorf("peer got %s", st)
		}
	})
	t.Run("SIP to unknown XMPP user: notice after the 200, none for typing", func(t *testing.T) {
		if got := l.sipMessage("nobody@peer.test", "application/im-iscomposing+xml", isComposing); got != 200 {
			t.Fatalf("isComposing status %d, want 200", got)
		}
		if got := l.sipMessage("nobody@peer.test", "text/plain", "anyone?"); got != 200 {
			t.Fatalf("text status %d, want 200", got)
		}
		recv(t, l.peerIn, "typing at the peer")
		recv(t, l.peerIn, "text at the peer")
		// Bounces come back in order on one stream: had the typing bounce
		// made a notice, it would arrive first.
		req := recv(t, l.edgeIn, "notice at the Edge")
		body := string(req.Body())
		if req.From().Address.String() != "sip:nobody@peer.test" || req.Recipient.String() != "sip:alice@litware.test" ||
			!strings.Contains(body, "not delivered: item-not-found (no such user)") || !strings.Contains(body, "> anyone?") {
			t.Errorf("notice from %s to %s: %q", req.From().Address.String(), req.Recipient.String(), body)
		}
		if !strings.Contains(l.logs.String(), "typing notification bounced") {
			t.Errorf("the typing bounce was not logged")
		}
	})
	t.Run("SIP to a domain that is not a partner", func(t *testing.T) {
		if got := l.sipMessage("eve@elsewhere.test", "text/plain", "hi"); got != 404 {
			t.Errorf("status %d, want 404", got)
		}
	})
	t.Run("XMPP to SIP", func(t *testing.T) {
		l.xmppMessage("carol@peer.test/phone", "alice@litware.test", "<body>Привет</body><thread>t-1</thread>")
		req := recv(t, l.edgeIn, "MESSAGE at the Edge")
		if string(req.Body()) != "Привет" || req.From().Address.String() != "sip:carol@peer.test" || req.CallID().Value() != "t-1" {
			t.Errorf("Edge got from %s call-id %s body %q", req.From().Address.String(), req.CallID().Value(), req.Body())
		}
	})
	t.Run("XMPP typing to SIP", func(t *testing.T) {
		l.xmppMessage("carol@peer.test", "alice@litware.test", "<composing xmlns='http://jabber.org/protocol/chatstates'/>")
		req := recv(t, l.edgeIn, "isComposing at the Edge")
		if ct := req.ContentType(); ct == nil || ct.Value() != "application/im-iscomposing+xml" || !strings.Contains(string(req.Body()), "<state>active</state>") {
			t.Errorf("Edge got %s", req)
		}
	})
	t.Run("XMPP to unknown SIP user bounces item-not-found", func(t *testing.T) {
		l.xmppMessage("carol@peer.test", "ghost@litware.test", "<body>boo</body>")
		recv(t, l.edgeIn, "MESSAGE at the Edge")
		st := recv(t, l.peerIn, "bounce at the peer")
		if st.Type != "error" || !strings.Contains(string(st.Inner), "<item-not-found") || !strings.Contains(string(st.Inner), "404") {
			t.Errorf("peer got %s", st)
		}
	})
	t.Run("XMPP conversations do not wait for each other and keep their order", func(t *testing.T) {
		// The Edge holds its answer to slow until all 10 messages to alice
		// arrived: if alice's conversation waited for slow's, they never
		// would, and the deadline fails the test.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		release := make(chan struct{})
		l.slowHold.Store(&release)
		defer func() { l.slowHold.Store(nil); close(release) }()
		next := func(what string) *sip.Request {
			t.Helper()
			select {
			case req := <-l.edgeIn:
				return req
			case <-ctx.Done():
				t.Fatalf("no %s before the deadline while the Edge held its answer to slow: the conversations wait for each other", what)
				return nil
			}
		}
		l.xmppMessage("carol@peer.test", "slow@litware.test", "<body>take your time</body>")
		for i := range 10 {
			l.xmppMessage("carol@peer.test", "alice@litware.test", fmt.Sprintf("<body>%d</body>", i))
		}
		var slowSeen bool
		for i := 0; i < 10; {
			req := next("MESSAGE to alice at the Edge")
			if req.Recipient.User == "slow" {
				slowSeen = true
				continue
			}
			if got := string(req.Body()); got != fmt.Sprint(i) {
				t.Errorf("message %d to alice arrived as %q: out of order", i, got)
			}
			i++
		}
		if !slowSeen {
			next("MESSAGE to slow at the Edge")
		}
	})
	t.Run("graceful stop delivers what is in flight and bounces what is queued", func(t *testing.T) {
		xmppAddr := l.srv.XMPPAddr().String()
		// Queued while the stream to silent.test waits for a header.
		if got := l.sipMessage("dave@silent.test", "text/plain", "queued"); got != 200 {
			t.Fatalf("status %d, want 200 (queued)", got)
		}
		l.xmppMessage("carol@peer.test", "slow@litware.test", "<body>last words</body>")
		recv(t, l.edgeIn, "MESSAGE at the Edge")
		start := time.Now()
		l.shutdown() // while the Edge still holds its answer
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Errorf("Serve returned after %v, before the Edge answered the message in flight", d)
		}
		if strings.Contains(l.logs.String(), "to=slow@litware.test") {
			t.Errorf("the message in flight was bounced:\n%s", l.logs.String())
		}
		notice := recv(t, l.edgeIn, "notice of the queued message")
		if body := string(notice.Body()); notice.From().Address.String() != "sip:dave@silent.test" || !strings.Contains(body, "not delivered") || !strings.Contains(body, "> queued") {
			t.Errorf("notice from %s: %q", notice.From().Address.String(), body)
		}
		for _, a := range []string{xmppAddr, l.sipAddr} {
			if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
				c.Close()
				t.Errorf("%s still accepts after Serve returned", a)
			}
		}
		if !strings.Contains(l.logs.String(), "gateway stopped") {
			t.Error("no stop logged")
		}
	})
}

// A side that fails stops the other, and Serve returns the failure.
func TestServeFatal(t *testing.T) {
	cfg := &config.Config{SIP: config.SIP{Domains: []string{"litware.test"},
		Edge: config.Edge{Host: "127.0.0.1", Port: 9, Transport: "tcp"}}}
	start := func(t *testing.T, sipListen string) (*gateway.Server, net.Listener, chan error) {
		xln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv, err := gateway.New(cfg, gateway.WithXMPPListener(xln), gateway.WithSIPListen(sipListen),
			gateway.WithSIPConfig(func(c *gwsip.Config) { c.KeepaliveInterval = -1 }))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(context.Background()) }()
		return srv, xln, done
	}
	wait := func(t *testing.T, done chan error) error {
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Serve kept running with one side down")
			return nil
		}
	}
	refused := func(t *testing.T, addr string) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts", addr)
		}
	}

	t.Run("SIP cannot listen", func(t *testing.T) {
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		_, xln, done := start(t, taken.Addr().String())
		if err := wait(t, done); err == nil || !strings.Contains(err.Error(), taken.Addr().String()) {
			t.Errorf("Serve = %v, want the SIP listen failure naming %s", err, taken.Addr())
		}
		refused(t, xln.Addr().String())
	})
	t.Run("s2s listener fails while serving", func(t *testing.T) {
		srv, xln, done := start(t, "127.0.0.1:0")
		for deadline := time.Now().Add(5 * time.Second); srv.SIPAddr() == nil && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		sipAddr := srv.SIPAddr().String()
		xln.Close() // the accept loop fails, as on a dead interface
		if err := wait(t, done); err == nil || !strings.Contains(err.Error(), "accept") {
			t.Errorf("Serve = %v, want the accept failure", err)
		}
		refused(t, sipAddr)
	})
}

// A listener already held by another socket: the error names the setting,
// what was expected and the fix, and still wraps the OS error.
func TestListenAddressInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	busy := held.Addr().String()
	tests := []struct {
		name      string
		xmpp, sip string
		want      string
	}{
		{"xmpp.listen", busy, "127.0.0.1:0", "xmpp.listen " + busy},
		{"sip.listen", "127.0.0.1:0", busy, "sip.listen tcp " + busy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{
				SIP: config.SIP{Domains: []string{"litware.test"},
					Edge: config.Edge{Host: "127.0.0.1", Port: 5060, Transport: "tcp"}},
				XMPP: config.XMPP{Listen: tt.xmpp},
			}
			srv, err := gateway.New(cfg, gateway.WithSIPListen(tt.sip), gateway.WithStateDir(t.TempDir()),
				gateway.WithLogger(slog.New(slog.DiscardHandler)),
				gateway.WithSIPConfig(func(c *gwsip.Config) { c.KeepaliveInterval = -1 }))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			err = srv.Listen()
			if !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("Listen: %v, want EADDRINUSE", err)
			}
			for _, part := range []string{tt.want, "address already in use", "expected a free local address", "change " + tt.name} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not say %q", err, part)
				}
			}
		})
	}
}
