package xmpp

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
)

var _ Handler = HandlerFunc(nil)

// TestHandlerBounce: an *Error from the Handler goes back to the sender
// with that condition; other errors become internal-server-error.
func TestHandlerBounce(t *testing.T) {
	f := newFed(t)
	a := f.add(peerOpts{domains: []string{"a.test"}, open: true})
	f.add(peerOpts{domains: []string{"b.test"}, open: true, mod: func(c *Config) {
		c.Handler = HandlerFunc(func(ctx context.Context, st *Stanza) error {
			switch st.To.Localpart() {
			case "nobody":
				return &Error{Type: ErrorTypeCancel, Condition: CondItemNotFound, Text: "no such SIP user"}
			case "broken":
				return errors.New("SIP side exploded")
			}
			return nil
		})
	}})
	tests := []struct{ to, cond, text string }{
		{"nobody@b.test", CondItemNotFound, "no such SIP user"},
		{"broken@b.test", CondInternalServerError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.to, func(t *testing.T) {
			if err := a.srv.Send(context.Background(), mustStanza(t, `<message from='alice@a.test' to='`+tt.to+`' id='h1'><body>x</body></message>`)); err != nil {
				t.Fatal(err)
			}
			got := a.recv(t)
			cond, text := stanzaErrorOf(mustNode(t, got))
			if got.Type != "error" || got.ID != "h1" || cond != tt.cond || text != tt.text {
				t.Errorf("bounce %s: condition %s text %q, want %s %q", got, cond, text, tt.cond, tt.text)
			}
		})
	}
}

// TestShutdown: streams end with system-shutdown and Serve returns.
func TestShutdown(t *testing.T) {
	f := newFed(t)
	a := f.add(peerOpts{domains: []string{"a.test"}, open: true})
	w := dialWire(t, a.addr)
	w.send(hdr("b.test", "a.test"))
	w.expect("</stream:features>")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	w.expect("<system-shutdown ")
	w.expectClosed()
	err := a.srv.Send(ctx, mustStanza(t, `<message from='alice@a.test' to='bob@b.test'/>`))
	if e, ok := err.(*Error); !ok || e.Condition != CondServiceUnavailable {
		t.Errorf("Send after Shutdown = %v", err)
	}
}

// TestOutboundStreamLimit: MaxStreams bounds outbound streams too; Send
// answers resource-constraint instead of opening more. (Inbound dialback
// verifications need a slot as well, hence a limit of 2 here.)
func TestOutboundStreamLimit(t *testing.T) {
	f := newFed(t)
	a := f.add(peerOpts{domains: []string{"a.test"}, open: true, mod: func(c *Config) { c.MaxStreams = 2 }})
	b := f.add(peerOpts{domains: []string{"b.test"}, open: true})
	f.add(peerOpts{domains: []string{"c.test"}, open: true})
	if err := a.srv.Send(context.Background(), mustStanza(t, `<message from='alice@a.test' to='bob@b.test'/>`)); err != nil {
		t.Fatal(err)
	}
	b.recv(t)
	// b's verify connection to a ends after its answer: one stream left.
	waitUntil(t, func() bool { return len(a.srv.Streams()) == 1 })
	w := dialWire(t, a.addr) // takes the second slot
	w.send(hdr("x.test", "a.test"))
	w.expect("</stream:features>")
	err := a.srv.Send(context.Background(), mustStanza(t, `<message from='alice@a.test' to='carol@c.test'/>`))
	if e, ok := err.(*Error); !ok || e.Condition != CondResourceConstraint || !strings.Contains(e.Text, "stream limit") {
		t.Errorf("second stream: Send = %v, want resource-constraint", err)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConfigErrors: New names what is wrong.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no domains", Config{}, "Config.Domains is empty"},
		{"bad auth", Config{Domains: []string{"a.test"}, Federation: []config.Partner{{Domain: "b.test", Auth: "sasl"}}}, `auth "sasl", expected dialback, tls or tls+dialback`},
		{"own domain as partner", Config{Domains: []string{"a.test"}, Federation: []config.Partner{{Domain: "A.test"}}}, "is one of our own domains"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestPolicy: allow list, open switch and deny list.
func TestPolicy(t *testing.T) {
	p, err := newPolicy([]config.Partner{{Domain: "gmail.test", Auth: "tls"}}, false, []string{"Evil.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	open, _ := newPolicy(nil, true, []string{"evil.test"}, nil)
	tests := []struct {
		name     string
		p        *policy
		domain   string
		wantMode string
		wantErr  string
	}{
		{"listed", p, "gmail.test", "tls", ""},
		{"listed, other case", p, "GMail.test", "tls", ""},
		{"sibling domain not listed", p, "googlemail.test", "", "domain googlemail.test is not in xmpp.federation (allowed: gmail.test) and xmpp.open is false"},
		{"denied", p, "evil.test", "", "domain evil.test is in xmpp.deny"},
		{"open admits with dialback", open, "any.test", "dialback", ""},
		{"deny wins over open", open, "evil.test", "", "xmpp.deny"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.p.mode(tt.domain)
			if m != tt.wantMode || (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("mode = %q, %v; want %q, %q", m, err, tt.wantMode, tt.wantErr)
			}
		})
	}
}

// TestNegotiationDeadlineOutbound: a peer that accepts TCP but never
// answers is given up after NegotiationTimeout, and the stanza bounces
// with remote-server-timeout.
func TestNegotiationDeadlineOutbound(t *testing.T) {
	f := newFed(t)
	a := f.add(peerOpts{domains: []string{"a.test"}, open: true, mod: func(c *Config) { c.NegotiationTimeout = 300 * time.Millisecond }})
	ln := mustListenSilent(t)
	zone := "_xmpp-server._tcp.mute.test. 60 IN SRV 0 5 " + portOf(ln.Addr().String()) + " host.mute.test.\nhost.mute.test. 60 IN A 127.0.0.1\n"
	if err := f.dns.Load("test.", zone); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := a.srv.Send(context.Background(), mustStanza(t, `<message from='alice@a.test' to='x@mute.test' id='t1'/>`)); err != nil {
		t.Fatal(err)
	}
	b := a.recv(t)
	cond, _ := stanzaErrorOf(mustNode(t, b))
	if cond != CondRemoteServerTimeout {
		t.Errorf("bounce condition %s, want remote-server-timeout: %s", cond, b)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("gave up after %v, want about the 300ms negotiation timeout", d)
	}
}

// mustListenSilent accepts connections and never says anything.
func mustListenSilent(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// TestQueueBound: while a stream is being set up, at most QueueSize
// stanzas wait; the next Send is refused, not buffered.
func TestQueueBound(t *testing.T) {
	f := newFed(t)
	a := f.add(peerOpts{domains: []string{"a.test"}, open: true, mod: func(c *Config) { c.QueueSize = 2 }})
	ln := mustListenSilent(t)
	zone := "_xmpp-server._tcp.mute.test. 60 IN SRV 0 5 " + portOf(ln.Addr().String()) + " host.mute.test.\nhost.mute.test. 60 IN A 127.0.0.1\n"
	if err := f.dns.Load("test.", zone); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		err := a.srv.Send(context.Background(), mustStanza(t, `<message from='alice@a.test' to='x@mute.test'/>`))
		switch {
		case i < 2 && err != nil:
			t.Fatalf("stanza %d: %v", i, err)
		case i == 2:
			if e, ok := err.(*Error); !ok || e.Condition != CondResourceConstraint {
				t.Errorf("third Send = %v, want resource-constraint", err)
			}
		}
	}
}
