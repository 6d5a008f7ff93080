package xmpp_test

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/gateway/xmpp"
	"github.com/xgw-gateway/xgw/internal/certtest"
	"github.com/xgw-gateway/xgw/internal/lab"
)

// ejabberd serves e.test on its own address next to Prosody's.
const (
	ejabberdDomain = "e.test"
	ejabberdAddr   = "127.0.1.3"
)

// TestEjabberdInterop runs the Prosody interop cases against Debian's
// ejabberd 23.01: an inbound message after dialback (plain and over
// STARTTLS) or SASL EXTERNAL, an outbound one, and a ping of the SIP
// domain. One ejabberd (its start costs seconds) serves every case; each
// case brings up its own gateway, so every case opens new s2s streams.
func TestEjabberdInterop(t *testing.T) {
	lab.DNS53(t, lab.ServerZone(ejabberdDomain, ejabberdAddr), lab.ServerZone(sipDomain, gatewayAddr))
	fedCA := certtest.NewCA(t, "federation CA")
	e := lab.StartEjabberd(t, lab.EjabberdConfig{Domain: ejabberdDomain, Addr: ejabberdAddr,
		Users: map[string]string{"carol": "carol-pw"},
		TLS:   fedCA.Issue(t, certtest.Leaf{CN: ejabberdDomain, DNSNames: []string{ejabberdDomain}, ECDSA: true}), TrustCA: fedCA})
	lctx, lcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer lcancel()
	carol := lab.Login(t, lctx, e.C2SAddr, e.JID("carol"), "carol-pw")

	tests := []struct {
		name string
		// tls is the gateway's TLS config; nil: it offers no STARTTLS.
		tls      func(t *testing.T) *tls.Config
		wantAuth string
		wantTLS  bool // on the gateway's inbound stream
	}{
		{"dialback without TLS on the gateway", func(t *testing.T) *tls.Config { return nil }, "dialback", false},
		// ejabberd tries SASL EXTERNAL first and falls back to dialback.
		{"dialback over STARTTLS (gateway certificate from an unrelated CA)", func(t *testing.T) *tls.Config {
			ca := certtest.NewCA(t, "gateway-only CA")
			leaf := ca.Issue(t, certtest.Leaf{CN: sipDomain, DNSNames: []string{sipDomain}, ECDSA: true})
			return &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, RootCAs: ca.Pool()}
		}, "dialback", true},
		{"SASL EXTERNAL (both trust one CA)", func(t *testing.T) *tls.Config {
			leaf := fedCA.Issue(t, certtest.Leaf{CN: sipDomain, DNSNames: []string{sipDomain}, ECDSA: true})
			return &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, RootCAs: fedCA.Pool()}
		}, "sasl-external", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// The previous cases' gateways are gone; wait until ejabberd has
			// closed its stream to each: a stanza it routes into a closing
			// stream is lost, not retried. (Its dialback verify streams log
			// no close, so count closes, not open streams.)
			if err := e.WaitLog(ctx, "Closing outbound s2s connection "+ejabberdDomain+" -> "+sipDomain+":", i); err != nil {
				t.Fatal(err)
			}
			g := startGateway(t, []config.Partner{{Domain: ejabberdDomain, Auth: config.AuthDialback}}, tt.tls(t))

			// Inbound: ejabberd -> gateway.
			body := "hello gateway: " + tt.name
			if err := carol.SendMessage(ctx, "bob@"+sipDomain, body); err != nil {
				t.Fatal(err)
			}
			st := g.recv(t, ctx)
			if st.Name != "message" || st.From.Bare().String() != e.JID("carol") || st.To.String() != "bob@"+sipDomain ||
				!strings.Contains(string(st.Inner), body) {
				t.Errorf("gateway got %s", st)
			}
			if in := g.stream(t, "in"); in.Auth != tt.wantAuth || in.TLS != tt.wantTLS {
				t.Errorf("inbound stream = %+v, want auth %s TLS %v", in, tt.wantAuth, tt.wantTLS)
			}

			// Outbound: gateway -> ejabberd user.
			reply := &xmpp.Stanza{Name: "message", From: st.To, To: st.From, Type: "chat",
				Inner: []byte("<body>hello carol: " + tt.name + "</body>")}
			if err := g.srv.Send(ctx, reply); err != nil {
				t.Fatal(err)
			}
			got, err := carol.WaitFor(ctx, lab.MessageFrom("bob@"+sipDomain))
			if err != nil {
				t.Fatal(err)
			}
			if got.Body != "hello carol: "+tt.name {
				t.Errorf("carol got %q", got.Body)
			}
			// ejabberd offers STARTTLS (optional), so the gateway always uses it.
			if out := g.stream(t, "out"); out.Auth != tt.wantAuth || !out.TLS {
				t.Errorf("outbound stream = %+v, want auth %s over TLS", out, tt.wantAuth)
			}

			// Ping of the SIP domain, relayed by ejabberd, answered by the gateway.
			if err := carol.Ping(ctx, sipDomain); err != nil {
				t.Errorf("ping %s: %v", sipDomain, err)
			}
		})
	}
}
