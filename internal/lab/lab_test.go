package lab_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/xgw-gateway/xgw/internal/certtest"
	"github.com/xgw-gateway/xgw/internal/lab"
)

// labPair is two Prosody instances federating through the lab DNS, with one
// logged-in user each.
type labPair struct {
	a, b         *lab.Prosody
	alice, bob   *lab.Client
	aliceJID     string
	bobJID       string
	ctx          context.Context
	coldDelivery time.Duration // first message alice -> bob on a cold s2s link
}

// startPair brings up a.test on 127.0.1.1 and b.test on 127.0.1.2 with
// their SRV records, logs in alice and bob, and sends the first message.
func startPair(t testing.TB, ctx context.Context, ca, cb lab.ProsodyConfig) *labPair {
	t.Helper()
	lab.DNS53(t, lab.ServerZone("a.test", "127.0.1.1"), lab.ServerZone("b.test", "127.0.1.2"))
	ca.Domain, ca.Addr, ca.Users = "a.test", "127.0.1.1", map[string]string{"alice": "alice-pw"}
	cb.Domain, cb.Addr, cb.Users = "b.test", "127.0.1.2", map[string]string{"bob": "bob-pw"}
	p := &labPair{a: lab.StartProsody(t, ca), b: lab.StartProsody(t, cb), ctx: ctx}
	p.aliceJID, p.bobJID = p.a.JID("alice"), p.b.JID("bob")
	p.alice = lab.Login(t, ctx, p.a.C2SAddr, p.aliceJID, "alice-pw")
	p.bob = lab.Login(t, ctx, p.b.C2SAddr, p.bobJID, "bob-pw")

	start := time.Now()
	if err := p.alice.SendMessage(ctx, p.bobJID, "first"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.bob.WaitFor(ctx, lab.MessageFrom(p.aliceJID)); err != nil {
		t.Fatalf("first message over s2s: %v", err)
	}
	p.coldDelivery = time.Since(start)
	return p
}

// Log lines that show how Prosody 0.12.3 authenticated an s2s stream.
var (
	dialbackVerified = regexp.MustCompile(`verified dialback key\.\.\. it is valid`)
	externalAccepted = regexp.MustCompile(`Accepting SASL EXTERNAL identity from a\.test`)
	s2sEncrypted     = regexp.MustCompile(`s2sin\w*\s+info\s+Stream encrypted`)
)

func TestDNS53(t *testing.T) {
	lab.DNS53(t, lab.ServerZone("a.test", "127.0.1.1"), lab.ServerZone("b.test", "127.0.1.2"))
	tests := []struct {
		name  string
		qname string
		qtype uint16
		rcode int
		want  string // the answer's data, "" for none
	}{
		{"SRV of a server", "_xmpp-server._tcp.b.test.", dns.TypeSRV, dns.RcodeSuccess, "0 5 5269 b.test."},
		{"SRV of a client", "_xmpp-client._tcp.a.test.", dns.TypeSRV, dns.RcodeSuccess, "0 5 5222 a.test."},
		{"A of the target", "a.test.", dns.TypeA, dns.RcodeSuccess, "127.0.1.1"},
		{"no Direct TLS SRV", "_xmpps-server._tcp.a.test.", dns.TypeSRV, dns.RcodeNameError, ""},
		{"no AAAA", "b.test.", dns.TypeAAAA, dns.RcodeSuccess, ""},
		{"unknown domain", "nowhere.test.", dns.TypeA, dns.RcodeNameError, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion(tc.qname, tc.qtype)
			r, err := dns.Exchange(m, lab.DNSAddr)
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
			got := ""
			if len(r.Answer) > 0 {
				h := r.Answer[0].Header().String()
				got = strings.TrimSpace(strings.TrimPrefix(r.Answer[0].String(), h))
			}
			if got != tc.want {
				t.Errorf("answer %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFederation(t *testing.T) {
	shared := certtest.NewCA(t, "lab shared CA")
	issue := func(domain string) *certtest.Pair {
		return shared.Issue(t, certtest.Leaf{CN: domain, DNSNames: []string{domain}, ECDSA: true})
	}
	tests := []struct {
		name         string
		a, b         lab.ProsodyConfig
		wantExternal bool // else dialback
		wantTLS      bool
	}{
		{name: "dialback over STARTTLS, untrusted certificates", wantTLS: true},
		{name: "dialback without TLS", a: lab.ProsodyConfig{NoS2STLS: true}, b: lab.ProsodyConfig{NoS2STLS: true}},
		{
			name:         "SASL EXTERNAL between trusted certificates",
			a:            lab.ProsodyConfig{TLS: issue("a.test"), TrustCA: shared, S2SSecureAuth: true},
			b:            lab.ProsodyConfig{TLS: issue("b.test"), TrustCA: shared, S2SSecureAuth: true},
			wantExternal: true, wantTLS: true,
		},
		{
			name:    "DialbackOnly between trusted certificates",
			a:       lab.ProsodyConfig{TLS: issue("a.test"), TrustCA: shared, RequireEncryption: true, DialbackOnly: true},
			b:       lab.ProsodyConfig{TLS: issue("b.test"), TrustCA: shared, RequireEncryption: true, DialbackOnly: true},
			wantTLS: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			p := startPair(t, ctx, tc.a, tc.b)
			t.Logf("first message on a cold link: %v", p.coldDelivery)

			// b.test received the stream from a.test; its log says how it
			// was authenticated.
			bLog := p.b.Log()
			if got := externalAccepted.MatchString(bLog); got != tc.wantExternal {
				t.Errorf("b.test accepted SASL EXTERNAL from a.test: %v, want %v", got, tc.wantExternal)
			}
			if got := dialbackVerified.MatchString(p.a.Log()); got == tc.wantExternal {
				t.Errorf("a.test answered a dialback verify: %v, want %v", got, !tc.wantExternal)
			}
			if got := s2sEncrypted.MatchString(bLog); got != tc.wantTLS {
				t.Errorf("b.test's inbound s2s encrypted: %v, want %v", got, tc.wantTLS)
			}
			if err := p.alice.Ping(ctx, "b.test"); err != nil {
				t.Errorf("ping over s2s: %v", err)
			}
		})
	}
}

// TestMessageBody checks that message bodies cross two Prosody instances
// and s2s (dialback) unchanged, byte for byte.
func TestMessageBody(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startPair(t, ctx, lab.ProsodyConfig{}, lab.ProsodyConfig{})
	t.Logf("first message on a cold link: %v", p.coldDelivery)

	tests := []struct{ name, body string }{
		{"CJK", "漢字かな交じり文 한국어"},
		{"Cyrillic", "Съешь же ещё этих мягких французских булок"},
		{"Arabic right-to-left", "مرحبا بالعالم"},
		{"emoji with ZWJ and skin tone", "🎉 👩🏽‍💻 👨‍👩‍👧"},
		{"combining accent, not NFC", "e\u0301te\u0301"},
		{"XML special characters", `<b>&amp; "quoted" 'single' ]]>`},
		{"multi-line", "line one\nline two\n\tindented"},
		{"leading and trailing spaces", "  padded  "},
		{"mixed", "SIP→XMPP: Привет, 世界, سلام, 🙂"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := p.alice.SendMessage(ctx, p.bobJID, tc.body); err != nil {
				t.Fatal(err)
			}
			got, err := p.bob.WaitFor(ctx, lab.MessageFrom(p.aliceJID))
			if err != nil {
				t.Fatal(err)
			}
			if got.Body != tc.body {
				t.Errorf("body\n got % x\nwant % x", got.Body, tc.body)
			}
			if got.Type != "chat" {
				t.Errorf("type %q, want chat", got.Type)
			}
		})
	}
}

func TestPingAndPresence(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := startPair(t, ctx, lab.ProsodyConfig{}, lab.ProsodyConfig{})

	pings := []struct {
		name    string
		from    *lab.Client
		to      string
		wantErr bool
	}{
		{"remote domain over s2s", p.alice, "b.test", false},
		{"reverse direction", p.bob, "a.test", false},
		{"own server", p.alice, "a.test", false},
		{"domain with no DNS records", p.alice, "nowhere.test", true},
	}
	for _, tc := range pings {
		t.Run("ping "+tc.name, func(t *testing.T) {
			err := tc.from.Ping(ctx, tc.to)
			if (err != nil) != tc.wantErr {
				t.Errorf("ping %s: error %v, want error: %v", tc.to, err, tc.wantErr)
			}
		})
	}

	t.Run("subscribe", func(t *testing.T) {
		if err := p.alice.Subscribe(ctx, p.bobJID); err != nil {
			t.Fatal(err)
		}
		got, err := p.bob.WaitFor(ctx, func(s lab.Stanza) bool {
			return s.Name == "presence" && s.Type == "subscribe" && s.From == p.aliceJID
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.To != p.bobJID {
			t.Errorf("subscribe to %q, want %q", got.To, p.bobJID)
		}
	})
}

// BenchmarkMessage measures a message from alice@a.test to bob@b.test over a
// warm s2s link, send to receipt, one at a time.
func BenchmarkMessage(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p := startPair(b, ctx, lab.ProsodyConfig{}, lab.ProsodyConfig{})
	for b.Loop() {
		if err := p.alice.SendMessage(ctx, p.bobJID, "bench"); err != nil {
			b.Fatal(err)
		}
		if _, err := p.bob.WaitFor(ctx, lab.MessageFrom(p.aliceJID)); err != nil {
			b.Fatal(err)
		}
	}
}
