package xmpp

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
)

// The example of XEP-0220 §2.2.2 (XEP-0185 key generation).
func TestDialbackKeyVector(t *testing.T) {
	got := dialbackKey(hashSecret([]byte("d14lb4ck43v3r")), "capulet.example", "montague.example", "417GAF25")
	if want := "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d"; got != want {
		t.Errorf("key = %s, want %s", got, want)
	}
}

func TestKeyringRotation(t *testing.T) {
	k := newKeyring([]byte("one"))
	key := k.key("recv.test", "orig.test", "id1")
	tests := []struct {
		name    string
		rotate  []string
		key, id string
		want    bool
	}{
		{"current secret", nil, key, "id1", true},
		{"upper case and spaces", nil, " " + strings.ToUpper(key) + "\n", "id1", true},
		{"other stream id", nil, key, "id2", false},
		{"previous secret after one rotation", []string{"two"}, key, "id1", true},
		{"dropped after two rotations", []string{"two", "three"}, key, "id1", false},
		{"garbage", nil, "not-a-key", "id1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newKeyring([]byte("one"))
			for _, s := range tt.rotate {
				k.rotate([]byte(s))
			}
			if got := k.valid(tt.key, "recv.test", "orig.test", tt.id); got != tt.want {
				t.Errorf("valid = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestAuthoritative plays a receiving server asking A (authoritative for
// a.test) about keys over a fresh, never-authenticated stream.
func TestAuthoritative(t *testing.T) {
	f := newFed(t)
	a := f.add(peerOpts{domains: []string{"a.test"}})
	good := dialbackKey(hashSecret(a.secret), "b.test", "a.test", "sid1")
	tests := []struct {
		name   string
		verify string
		rotate int // RotateSecret calls before asking
		want   string
	}{
		{"valid key", "<db:verify from='b.test' to='a.test' id='sid1'>" + good + "</db:verify>", 0,
			"<db:verify from='a.test' to='b.test' id='sid1' type='valid'/>"},
		{"key for another stream id", "<db:verify from='b.test' to='a.test' id='sid2'>" + good + "</db:verify>", 0,
			"<db:verify from='a.test' to='b.test' id='sid2' type='invalid'/>"},
		{"key for another receiving domain", "<db:verify from='c.test' to='a.test' id='sid1'>" + good + "</db:verify>", 0,
			"<db:verify from='a.test' to='c.test' id='sid1' type='invalid'/>"},
		{"not our domain", "<db:verify from='b.test' to='zz.test' id='sid1'>" + good + "</db:verify>", 0,
			"<db:verify from='zz.test' to='b.test' id='sid1' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"},
		{"previous secret still valid", "<db:verify from='b.test' to='a.test' id='sid1'>" + good + "</db:verify>", 1,
			"type='valid'/>"},
		{"secret two rotations old", "<db:verify from='b.test' to='a.test' id='sid1'>" + good + "</db:verify>", 2,
			"type='invalid'/>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.srv.keys = newKeyring(a.secret)
			for i := range tt.rotate {
				a.srv.RotateSecret([]byte(fmt.Sprint("rotated", i)))
			}
			w := dialWire(t, a.addr)
			w.send(hdr("b.test", "a.test"))
			w.expect("</stream:features>")
			w.send(tt.verify)
			w.expect(tt.want)
			// The stream stays open for more requests (XEP-0220 §2.4).
			w.send("<db:verify from='b.test' to='a.test' id='x'>00</db:verify>")
			w.expect("type='invalid'/>")
		})
	}
}

// receivingFixture: A serves a.test; B is the real authoritative server
// for b.test and c.test. The test plays the initiating server for B's
// domains, computing keys with B's secret.
func receivingFixture(t *testing.T, partners ...config.Partner) (f *fed, a, b *peer) {
	f = newFed(t)
	if partners == nil {
		partners = []config.Partner{{Domain: "b.test"}, {Domain: "c.test"}, {Domain: "gone.test"}}
	}
	a = f.add(peerOpts{domains: []string{"a.test"}, partners: partners})
	b = f.add(peerOpts{domains: []string{"b.test", "c.test"}, open: true})
	return f, a, b
}

func TestReceivingDialback(t *testing.T) {
	_, a, b := receivingFixture(t)
	w := dialWire(t, a.addr)
	w.send(hdr("b.test", "a.test"))
	id := attrOf(w.expect("</stream:features>"), "<stream:stream", "id")
	key := func(from string) string { return dialbackKey(hashSecret(b.secret), "a.test", from, id) }

	w.send("<db:result from='b.test' to='a.test'>" + key("b.test") + "</db:result>")
	w.expect("<db:result from='a.test' to='b.test' type='valid'/>")
	a.logs.waitLog(t, "xmpp stream authenticated", "pair=b.test->a.test", "auth=dialback")
	b.logs.waitLog(t, "xmpp dialback verify answered", "result=valid")

	w.send("<message from='bob@b.test/r' to='alice@a.test' type='chat' id='m1'><body>hi</body></message>")
	if st := a.recv(t); st.From.String() != "bob@b.test/r" || !strings.Contains(string(st.Inner), "<body>hi</body>") {
		t.Errorf("handler got %s", st)
	}

	// Piggybacking: a second sender domain on the same stream.
	w.send("<db:result from='c.test' to='a.test'>" + key("c.test") + "</db:result>")
	w.expect("<db:result from='a.test' to='c.test' type='valid'/>")
	w.send("<presence from='carol@c.test' to='alice@a.test'/>")
	if st := a.recv(t); st.From.String() != "carol@c.test" || st.Name != "presence" {
		t.Errorf("handler got %s", st)
	}
	if got := a.srv.Streams(); len(got) != 1 || len(got[0].Authenticated) != 2 {
		t.Errorf("streams = %+v, want one inbound with 2 pairs", got)
	}

	// A sender domain nobody authenticated: stream error, nothing delivered.
	w.send("<message from='mallory@evil.test' to='alice@a.test'><body>spoof</body></message>")
	w.expect("<invalid-from xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>")
	w.expectClosed()
	select {
	case st := <-a.inbox:
		t.Errorf("forged stanza delivered: %s", st)
	default:
	}
}

// TestReceivingDialbackErrors covers XEP-0220 §2.4 and the refusals that
// must name the domain.
func TestReceivingDialbackErrors(t *testing.T) {
	f, a, _ := receivingFixture(t, config.Partner{Domain: "b.test"}, config.Partner{Domain: "gone.test"},
		config.Partner{Domain: "down.test"}, config.Partner{Domain: "c.test", Auth: "tls"})
	tests := []struct {
		name   string
		from   string
		to     string
		key    func(id string) string
		want   string
		log    []string
		closed bool
	}{
		{"forged key is invalid and closes the stream", "b.test", "a.test",
			func(id string) string {
				return dialbackKey(hashSecret([]byte("not B's secret")), "a.test", "b.test", id)
			},
			"<db:result from='a.test' to='b.test' type='invalid'/>", []string{"xmpp stream refused", "dialback key invalid"}, true},
		{"unlisted domain named in the refusal (googlemail seed case)", "googlemail.test", "a.test", nil,
			"<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>domain googlemail.test is not in xmpp.federation (allowed: b.test, c.test, down.test, gone.test)",
			[]string{"xmpp dialback refused", "pair=googlemail.test->a.test", "not in xmpp.federation"}, false},
		{"sender claims our own domain", "a.test", "a.test", nil,
			"<db:result from='a.test' to='a.test' type='error'><error type='cancel'><forbidden ", []string{"sender claims one of our own domains"}, false},
		{"target domain not ours", "b.test", "zz.test", nil,
			"<db:result from='zz.test' to='b.test' type='error'><error type='cancel'><item-not-found ", nil, false},
		{"authoritative server not in DNS", "gone.test", "a.test", nil,
			"<db:result from='a.test' to='gone.test' type='error'><error type='cancel'><remote-server-not-found ", []string{"xmpp dialback failed", "gone.test"}, false},
		{"authoritative server refuses connections", "down.test", "a.test", nil,
			"<db:result from='a.test' to='down.test' type='error'><error type='cancel'><remote-connection-failed ", []string{"xmpp dialback failed"}, false},
		{"partner requiring TLS dialing in plain", "c.test", "a.test", nil,
			"<db:result from='a.test' to='c.test' type='error'><error type='cancel'><policy-violation ", []string{"TLS required"}, false},
	}
	// down.test: SRV to a port where nothing listens.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	if err := f.dns.Load("test.", fmt.Sprintf("_xmpp-server._tcp.down.test. 60 IN SRV 0 5 %s xmpp.b.test.\n", p)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := dialWire(t, a.addr)
			w.send(hdr(tt.from, "a.test"))
			id := attrOf(w.expect("</stream:features>"), "<stream:stream", "id")
			key := "0123456789abcdef"
			if tt.key != nil {
				key = tt.key(id)
			}
			w.send("<db:result from='" + tt.from + "' to='" + tt.to + "'>" + key + "</db:result>")
			w.expect(tt.want)
			if len(tt.log) > 0 {
				a.logs.waitLog(t, tt.log...)
			}
			if tt.closed {
				w.expectClosed()
				return
			}
			// Dialback errors are not stream errors: the stream still works.
			w.send("<db:verify from='b.test' to='a.test' id='x'>00</db:verify>")
			w.expect("type='invalid'/>")
		})
	}
}

// TestRelayRefused: an authenticated peer may not use us to reach other
// domains (RFC 6120 §13.7.1.3, no XMPP-to-XMPP relaying).
func TestRelayRefused(t *testing.T) {
	_, a, b := receivingFixture(t)
	w := dialWire(t, a.addr)
	w.send(hdr("b.test", "a.test"))
	id := attrOf(w.expect("</stream:features>"), "<stream:stream", "id")
	w.send("<db:result from='b.test' to='a.test'>" + dialbackKey(hashSecret(b.secret), "a.test", "b.test", id) + "</db:result>")
	w.expect("type='valid'/>")
	w.send("<message from='bob@b.test' to='x@elsewhere.test'><body>relay me</body></message>")
	w.expect("<host-unknown ")
	w.expect("relays nothing")
	w.expectClosed()
}

// TestUnverifiedDialback: until the authoritative server has answered, the
// pair is not authenticated: stanzas for it are refused (XEP-0220 §2.2.1).
// The authoritative server of slow.test accepts TCP and never answers, so
// the verification stays pending for the whole test.
func TestUnverifiedDialback(t *testing.T) {
	f, a, b := receivingFixture(t, config.Partner{Domain: "b.test"}, config.Partner{Domain: "slow.test"})
	ln := mustListenSilent(t)
	zone := "_xmpp-server._tcp.slow.test. 60 IN SRV 0 5 " + portOf(ln.Addr().String()) + " host.slow.test.\nhost.slow.test. 60 IN A 127.0.0.1\n"
	if err := f.dns.Load("test.", zone); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		authFirst bool // authenticate b.test first, then piggyback slow.test
		want      string
	}{
		{"stanza before the only pair is verified", false, "<not-authorized "},
		{"piggybacked pair still pending", true, "<invalid-from "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := dialWire(t, a.addr)
			w.send(hdr("slow.test", "a.test"))
			id := attrOf(w.expect("</stream:features>"), "<stream:stream", "id")
			if tt.authFirst {
				w.send("<db:result from='b.test' to='a.test'>" + dialbackKey(hashSecret(b.secret), "a.test", "b.test", id) + "</db:result>")
				w.expect("type='valid'/>")
			}
			w.send("<db:result from='slow.test' to='a.test'>0123456789</db:result>")
			w.send("<message from='x@slow.test' to='alice@a.test'><body>too early</body></message>")
			w.expect(tt.want)
			w.expectClosed()
			select {
			case st := <-a.inbox:
				t.Errorf("unverified stanza delivered: %s", st)
			default:
			}
		})
	}
}

// TestInboundIdle: an authenticated stream with no traffic for IdleTimeout
// ends with connection-timeout (RFC 6120 §4.9.3.4).
func TestInboundIdle(t *testing.T) {
	f := newFed(t)
	a := f.add(peerOpts{domains: []string{"a.test"}, open: true, mod: func(c *Config) { c.IdleTimeout = 300 * time.Millisecond }})
	b := f.add(peerOpts{domains: []string{"b.test"}, open: true})
	w := dialWire(t, a.addr)
	w.send(hdr("b.test", "a.test"))
	id := attrOf(w.expect("</stream:features>"), "<stream:stream", "id")
	w.send("<db:result from='b.test' to='a.test'>" + dialbackKey(hashSecret(b.secret), "a.test", "b.test", id) + "</db:result>")
	w.expect("type='valid'/>")
	start := time.Now()
	w.expect("<connection-timeout ")
	w.expectClosed()
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout", d)
	}
	a.logs.waitLog(t, "xmpp stream closed", "dir=in", "remote=b.test", "connection-timeout")
}
