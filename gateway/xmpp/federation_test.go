package xmpp

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/certtest"
)

// TestFederation runs two gateways (a.test, b.test) on loopback, resolving
// each other through the in-process DNS server, and sends a message each
// way with every authentication path.
func TestFederation(t *testing.T) {
	trusted := certtest.NewCA(t, "xgw test CA")
	other := certtest.NewCA(t, "unknown CA")
	tests := []struct {
		name     string
		tlsA     func(t *testing.T) *tlsPair
		wantAuth string
		wantTLS  bool
		modeB    string // b's auth requirement for a.test
		direct   bool   // b serves XEP-0368 direct TLS only
	}{
		{"dialback without TLS", nil, "dialback", false, "dialback", false},
		{"STARTTLS, certificates not trusted: dialback over TLS", func(t *testing.T) *tlsPair {
			return &tlsPair{A: tlsFor(t, other, "a.test", trusted), B: tlsFor(t, other, "b.test", trusted)}
		}, "dialback", true, "tls+dialback", false},
		{"STARTTLS, certificates trusted: SASL EXTERNAL", func(t *testing.T) *tlsPair {
			return &tlsPair{A: tlsFor(t, trusted, "a.test", trusted), B: tlsFor(t, trusted, "b.test", trusted)}
		}, "sasl-external", true, "tls", false},
		{"direct TLS (XEP-0368), certificates trusted", func(t *testing.T) *tlsPair {
			return &tlsPair{A: tlsFor(t, trusted, "a.test", trusted), B: tlsFor(t, trusted, "b.test", trusted)}
		}, "sasl-external", true, "tls", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFed(t)
			var pa, pb peerOpts
			pa = peerOpts{domains: []string{"a.test"}, partners: []config.Partner{{Domain: "b.test", Auth: tt.modeB}}}
			pb = peerOpts{domains: []string{"b.test"}, partners: []config.Partner{{Domain: "a.test", Auth: tt.modeB}}, directTLS: tt.direct}
			if tt.tlsA != nil {
				p := tt.tlsA(t)
				pa.tls, pb.tls = p.A, p.B
			}
			a, b := f.add(pa), f.add(pb)

			if err := a.srv.Send(context.Background(), mustStanza(t, `<message from='alice@a.test/sip' to='bob@b.test' type='chat' id='m1'><body>hello bob</body></message>`)); err != nil {
				t.Fatal(err)
			}
			got := b.recv(t)
			if got.From.String() != "alice@a.test/sip" || got.To.String() != "bob@b.test" || !strings.Contains(string(got.Inner), "hello bob") {
				t.Errorf("b got %s", got)
			}
			out := streamOf(t, a.srv, "out")
			if out.Auth != tt.wantAuth || out.TLS != tt.wantTLS {
				t.Errorf("a's outbound stream = %+v, want auth %s tls %v", out, tt.wantAuth, tt.wantTLS)
			}
			in := streamOf(t, b.srv, "in")
			if in.Auth != tt.wantAuth || len(in.Authenticated) != 1 || in.Authenticated[0] != "a.test->b.test" {
				t.Errorf("b's inbound stream = %+v", in)
			}
			a.logs.waitLog(t, "xmpp stream authenticated", "dir=out", "remote=b.test", "auth="+tt.wantAuth)

			// The answer travels on b's own outbound stream (streams are unidirectional).
			if err := b.srv.Send(context.Background(), got.Reply("chat")); err != nil {
				t.Fatal(err)
			}
			if back := a.recv(t); back.From.String() != "bob@b.test" || back.To.String() != "alice@a.test/sip" {
				t.Errorf("a got %s", back)
			}
			// Reused: still one outbound stream each way.
			a.srv.Send(context.Background(), mustStanza(t, `<message from='alice@a.test' to='bob@b.test'><body>2</body></message>`))
			b.recv(t)
			if n := countStreams(a.srv, "out"); n != 1 {
				t.Errorf("a has %d outbound streams, want 1 (pooled)", n)
			}
		})
	}
}

// tlsPair is one certificate setup for a test federation.
type tlsPair struct{ A, B *tls.Config }

func streamOf(t *testing.T, s *Server, dir string) StreamInfo {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		for _, si := range s.Streams() {
			if si.Direction == dir && si.Auth != "" {
				return si
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no authenticated %s stream: %+v", dir, s.Streams())
	return StreamInfo{}
}

func countStreams(s *Server, dir string) int {
	n := 0
	for _, si := range s.Streams() {
		if si.Direction == dir {
			n++
		}
	}
	return n
}

// TestDomainAnswers: XEP-0199 ping and XEP-0030 disco#info to a SIP domain
// are answered; other requests get service-unavailable (RFC 6120 §8.3.3.19).
func TestDomainAnswers(t *testing.T) {
	f := newFed(t)
	a := f.add(peerOpts{domains: []string{"a.test"}, open: true})
	f.add(peerOpts{domains: []string{"b.test"}, open: true})
	tests := []struct {
		name, iq string
		want     []string
	}{
		{"ping", `<iq from='alice@a.test' to='b.test' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`,
			[]string{"<iq from='b.test' to='alice@a.test' type='result' id='p1'"}},
		{"disco#info", `<iq from='alice@a.test' to='b.test' type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
			[]string{"type='result' id='d1'", "<identity category='gateway' type='simple'", "<feature var='urn:xmpp:ping'/>"}},
		{"version is not served", `<iq from='alice@a.test' to='b.test' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>`,
			[]string{"type='error' id='v1'", "<service-unavailable "}},
		{"iq to a SIP user", `<iq from='alice@a.test' to='bob@b.test' type='get' id='u1'><query xmlns='jabber:iq:version'/></iq>`,
			[]string{"from='bob@b.test'", "type='error' id='u1'", "<service-unavailable "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := a.srv.Send(context.Background(), mustStanza(t, tt.iq)); err != nil {
				t.Fatal(err)
			}
			got := a.recv(t).String()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("answer lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

// TestOutboundFailures: stanzas queued for a domain that cannot be reached
// or refuses us come back to their sender with an RFC 6120 error.
func TestOutboundFailures(t *testing.T) {
	f := newFed(t)
	a := f.add(peerOpts{domains: []string{"a.test"}, open: true, deny: []string{"denied.test"}})
	f.add(peerOpts{domains: []string{"strict.test"}, partners: []config.Partner{{Domain: "gmail.test"}}})
	tests := []struct {
		name     string
		to       string
		sendErr  string // Send itself fails with this condition
		wantCond string // else the bounce's condition
		wantText string
	}{
		{"domain not in DNS", "nowhere.test", "", "remote-server-not-found", "nowhere.test"},
		{"remote refuses our domain", "strict.test", "", "remote-server-timeout", "refused dialback: forbidden domain a.test is not in xmpp.federation"},
		{"denied locally", "denied.test", "forbidden", "", "denied.test is in xmpp.deny"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := a.srv.Send(context.Background(), mustStanza(t, `<message from='alice@a.test' to='x@`+tt.to+`' id='q1'><body>hi</body></message>`))
			if tt.sendErr != "" {
				e, ok := err.(*Error)
				if !ok || e.Condition != tt.sendErr || !strings.Contains(e.Text, tt.wantText) {
					t.Fatalf("Send err = %v, want %s naming %q", err, tt.sendErr, tt.wantText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b := a.recv(t)
			if b.Type != "error" || b.To.String() != "alice@a.test" || b.From.String() != "x@"+tt.to {
				t.Fatalf("bounce = %s", b)
			}
			cond, text := stanzaErrorOf(mustNode(t, b))
			if cond != tt.wantCond || !strings.Contains(text, tt.wantText) {
				t.Errorf("bounce condition %s text %q, want %s containing %q", cond, text, tt.wantCond, tt.wantText)
			}
			// Backoff: the next stanza fails at once with the same condition.
			err = a.srv.Send(context.Background(), mustStanza(t, `<message from='alice@a.test' to='x@`+tt.to+`'/>`))
			if e, ok := err.(*Error); !ok || e.Condition != tt.wantCond {
				t.Errorf("Send during backoff = %v, want %s", err, tt.wantCond)
			}
		})
	}
}

func mustNode(t *testing.T, st *Stanza) *node {
	t.Helper()
	n, err := parseNode(st.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestQueueAndIdle: stanzas sent while the stream is set up arrive in
// order; an idle stream closes and the next stanza reconnects.
func TestQueueAndIdle(t *testing.T) {
	f := newFed(t)
	a := f.add(peerOpts{domains: []string{"a.test"}, open: true, mod: func(c *Config) { c.IdleTimeout = 300 * time.Millisecond }})
	b := f.add(peerOpts{domains: []string{"b.test"}, open: true})
	const n = 20
	for i := range n {
		if err := a.srv.Send(context.Background(), mustStanza(t, fmt.Sprintf(`<message from='alice@a.test' to='bob@b.test' id='m%d'/>`, i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if got := b.recv(t); got.ID != fmt.Sprintf("m%d", i) {
			t.Fatalf("stanza %d has id %s: order lost", i, got.ID)
		}
	}
	a.logs.waitLog(t, "xmpp stream closed", "dir=out", "reason=idle")
	if err := a.srv.Send(context.Background(), mustStanza(t, `<message from='alice@a.test' to='bob@b.test' id='again'/>`)); err != nil {
		t.Fatal(err)
	}
	if got := b.recv(t); got.ID != "again" {
		t.Errorf("after reconnect got %s", got)
	}
}

// TestLimits: the per-peer stream limit refuses extra inbound streams.
func TestLimits(t *testing.T) {
	f := newFed(t)
	a := f.add(peerOpts{domains: []string{"a.test"}, open: true, mod: func(c *Config) { c.MaxStreamsPerPeer = 2 }})
	for range 2 {
		w := dialWire(t, a.addr)
		w.send(hdr("b.test", "a.test"))
		w.expect("</stream:features>")
	}
	w := dialWire(t, a.addr)
	w.send(hdr("b.test", "a.test"))
	w.expect("<resource-constraint ")
	w.expect("too many streams from b.test (limit 2)")
	w.expectClosed()
}

// TestTLSPolicy: auth "tls" needs a certificate valid for the partner's
// domain, on our outbound stream and on the partner's inbound one.
func TestTLSPolicy(t *testing.T) {
	untrusted := certtest.NewCA(t, "unknown CA")
	roots := certtest.NewCA(t, "roots")
	tests := []struct {
		name         string
		aMode, bMode string
		wantCond     string
		wantText     string
	}{
		{"we require tls, peer's certificate untrusted", "tls", "dialback", CondRemoteServerNotFound, "requires a valid certificate for b.test"},
		{"peer requires tls, our certificate untrusted", "dialback", "tls", CondRemoteServerTimeout, "not-authorized a.test needs a certificate valid for its domain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFed(t)
			a := f.add(peerOpts{domains: []string{"a.test"}, partners: []config.Partner{{Domain: "b.test", Auth: tt.aMode}}, tls: tlsFor(t, untrusted, "a.test", roots)})
			f.add(peerOpts{domains: []string{"b.test"}, partners: []config.Partner{{Domain: "a.test", Auth: tt.bMode}}, tls: tlsFor(t, untrusted, "b.test", roots)})
			if err := a.srv.Send(context.Background(), mustStanza(t, `<message from='alice@a.test' to='bob@b.test'/>`)); err != nil {
				t.Fatal(err)
			}
			cond, text := stanzaErrorOf(mustNode(t, a.recv(t)))
			if cond != tt.wantCond || !strings.Contains(text, tt.wantText) {
				t.Errorf("bounce %s %q, want %s containing %q", cond, text, tt.wantCond, tt.wantText)
			}
		})
	}
}

// TestDiscovery: RFC 6120 §3.2 resolution of the remote domain: SRV
// targets in priority order with fallthrough to the next one, and the
// domain's own address on 5269 when there is no SRV record. Config.Dial
// records the addresses tried and sends 127.0.0.1:5269 (a fixed port tests
// cannot bind) to the peer's real listener.
func TestDiscovery(t *testing.T) {
	tests := []struct {
		name   string
		zone   func(bPort, deadPort string) string
		dialed func(bPort, deadPort string) []string
	}{
		{"first SRV target refuses, second answers", func(bPort, deadPort string) string {
			return "_xmpp-server._tcp.r.test. 60 IN SRV 0 5 " + deadPort + " dead.r.test.\n" +
				"_xmpp-server._tcp.r.test. 60 IN SRV 10 5 " + bPort + " live.r.test.\n" +
				"dead.r.test. 60 IN A 127.0.0.1\nlive.r.test. 60 IN A 127.0.0.1\n"
		}, func(bPort, deadPort string) []string { return []string{"127.0.0.1:" + deadPort, "127.0.0.1:" + bPort} }},
		{"no SRV: the domain's A record on 5269", func(bPort, deadPort string) string {
			return "r.test. 60 IN A 127.0.0.1\n"
		}, func(bPort, deadPort string) []string { return []string{"127.0.0.1:5269"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFed(t)
			var mu sync.Mutex
			var dialed []string
			var bAddr string
			a := f.add(peerOpts{domains: []string{"a.test"}, open: true, mod: func(c *Config) {
				c.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
					mu.Lock()
					dialed = append(dialed, addr)
					if addr == "127.0.0.1:5269" {
						addr = bAddr
					}
					mu.Unlock()
					var d net.Dialer
					return d.DialContext(ctx, network, addr)
				}
			}})
			b := f.add(peerOpts{domains: []string{"r.test"}, open: true, noDNS: true})
			mu.Lock()
			bAddr = b.addr
			mu.Unlock()
			dead := mustListenSilent(t)
			deadPort := portOf(dead.Addr().String())
			dead.Close() // now refuses
			if err := f.dns.Load("test.", tt.zone(portOf(b.addr), deadPort)); err != nil {
				t.Fatal(err)
			}
			if err := a.srv.Send(context.Background(), mustStanza(t, `<message from='alice@a.test' to='bob@r.test'/>`)); err != nil {
				t.Fatal(err)
			}
			if got := b.recv(t); got.To.String() != "bob@r.test" {
				t.Errorf("got %s", got)
			}
			mu.Lock()
			defer mu.Unlock()
			if want := tt.dialed(portOf(b.addr), deadPort); strings.Join(dialed, " ") != strings.Join(want, " ") {
				t.Errorf("dialed %v, want %v", dialed, want)
			}
		})
	}
}
