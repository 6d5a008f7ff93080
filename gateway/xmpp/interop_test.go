package xmpp_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/gateway/xmpp"
	"github.com/xgw-gateway/xgw/internal/certtest"
	"github.com/xgw-gateway/xgw/internal/lab"
	"github.com/xgw-gateway/xgw/internal/resolve"
	"mellium.im/xmpp/jid"
)

// Lab addresses: Prosody serves p.test, the gateway serves the SIP domain
// sip.test on the standard s2s port, each on its own loopback address of
// the test namespace.
const (
	prosodyDomain = "p.test"
	prosodyAddr   = "127.0.1.1"
	sipDomain     = "sip.test"
	gatewayAddr   = "127.0.1.10"
)

// gateway is a running xgw s2s Server in the lab.
type gateway struct {
	srv   *xmpp.Server
	inbox chan *xmpp.Stanza
	logs  *lab.LogBuffer
}

// waitLog waits until one log line contains every substring.
func (g *gateway) waitLog(t *testing.T, subs ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(g.logs.String(), "\n") {
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(line, s)
			}
			if ok {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("gateway log has no line with %q:\n%s", subs, g.logs.String())
}

func startGateway(t *testing.T, partners []config.Partner, tlsCfg *tls.Config) *gateway {
	t.Helper()
	r, err := resolve.New(lab.DNSAddr)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{inbox: make(chan *xmpp.Stanza, 16), logs: &lab.LogBuffer{}}
	g.srv, err = xmpp.New(xmpp.Config{
		Domains:    []string{sipDomain},
		TLS:        tlsCfg,
		Resolver:   r,
		Federation: partners,
		Logger:     slog.New(slog.NewTextHandler(g.logs, nil)),
		Handler: xmpp.HandlerFunc(func(ctx context.Context, st *xmpp.Stanza) error {
			g.inbox <- st
			return nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(gatewayAddr, "5269"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go g.srv.Serve(ctx, ln)
	t.Cleanup(func() {
		cancel()
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		g.srv.Shutdown(sctx)
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.logs.String())
		}
	})
	return g
}

func (g *gateway) recv(t *testing.T, ctx context.Context) *xmpp.Stanza {
	t.Helper()
	select {
	case st := <-g.inbox:
		return st
	case <-ctx.Done():
		t.Fatalf("no stanza reached the gateway's handler: %v", ctx.Err())
		return nil
	}
}

func (g *gateway) stream(t *testing.T, dir string) xmpp.StreamInfo {
	t.Helper()
	for _, si := range g.srv.Streams() {
		if si.Direction == dir && si.Auth != "" {
			return si
		}
	}
	t.Fatalf("no authenticated %s stream: %+v", dir, g.srv.Streams())
	return xmpp.StreamInfo{}
}

// TestProsodyInterop runs issue 3's interop list against Prosody 0.12:
// inbound and outbound messages after dialback (plain and over STARTTLS),
// with SASL EXTERNAL, a ping of the SIP domain, and an unlisted domain.
func TestProsodyInterop(t *testing.T) {
	tests := []struct {
		name string
		// certs returns the gateway's TLS config and Prosody's config
		// changes; nil TLS means the gateway offers no STARTTLS.
		certs    func(t *testing.T) (*tls.Config, lab.ProsodyConfig)
		wantAuth string
		wantTLS  bool // on the gateway's inbound stream
	}{
		{"dialback without TLS on the gateway", func(t *testing.T) (*tls.Config, lab.ProsodyConfig) {
			return nil, lab.ProsodyConfig{}
		}, "dialback", false},
		{"dialback over STARTTLS (certificates from unrelated CAs)", func(t *testing.T) (*tls.Config, lab.ProsodyConfig) {
			ca := certtest.NewCA(t, "gateway-only CA")
			leaf := ca.Issue(t, certtest.Leaf{CN: sipDomain, DNSNames: []string{sipDomain}, ECDSA: true})
			return &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, RootCAs: ca.Pool()}, lab.ProsodyConfig{}
		}, "dialback", true},
		{"SASL EXTERNAL (both trust one CA)", func(t *testing.T) (*tls.Config, lab.ProsodyConfig) {
			ca := certtest.NewCA(t, "federation CA")
			gw := ca.Issue(t, certtest.Leaf{CN: sipDomain, DNSNames: []string{sipDomain}, ECDSA: true})
			pr := ca.Issue(t, certtest.Leaf{CN: prosodyDomain, DNSNames: []string{prosodyDomain}, ECDSA: true})
			return &tls.Config{Certificates: []tls.Certificate{gw.TLS}, RootCAs: ca.Pool()},
				lab.ProsodyConfig{TLS: pr, TrustCA: ca}
		}, "sasl-external", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			lab.DNS53(t, lab.ServerZone(prosodyDomain, prosodyAddr), lab.ServerZone(sipDomain, gatewayAddr))
			tlsCfg, pc := tt.certs(t)
			pc.Domain, pc.Addr, pc.Users = prosodyDomain, prosodyAddr, map[string]string{"alice": "alice-pw"}
			g := startGateway(t, []config.Partner{{Domain: prosodyDomain, Auth: config.AuthDialback}}, tlsCfg)
			p := lab.StartProsody(t, pc)
			alice := lab.Login(t, ctx, p.C2SAddr, p.JID("alice"), "alice-pw")

			// (1) inbound: Prosody -> gateway.
			if err := alice.SendMessage(ctx, "bob@"+sipDomain, "hello gateway"); err != nil {
				t.Fatal(err)
			}
			st := g.recv(t, ctx)
			if st.Name != "message" || st.From.Bare().String() != p.JID("alice") || st.To.String() != "bob@"+sipDomain ||
				!strings.Contains(string(st.Inner), "hello gateway") {
				t.Errorf("gateway got %s", st)
			}
			in := g.stream(t, "in")
			if in.Auth != tt.wantAuth || in.TLS != tt.wantTLS {
				t.Errorf("inbound stream = %+v, want auth %s TLS %v", in, tt.wantAuth, tt.wantTLS)
			}

			// (2) outbound: gateway -> Prosody user.
			reply := &xmpp.Stanza{Name: "message", From: st.To, To: st.From, Type: "chat",
				Inner: []byte("<body>hello alice</body>")}
			if err := g.srv.Send(ctx, reply); err != nil {
				t.Fatal(err)
			}
			got, err := alice.WaitFor(ctx, lab.MessageFrom("bob@"+sipDomain))
			if err != nil {
				t.Fatal(err)
			}
			if got.Body != "hello alice" {
				t.Errorf("alice got %q", got.Body)
			}
			out := g.stream(t, "out")
			if out.Auth != tt.wantAuth || !out.TLS {
				t.Errorf("outbound stream = %+v, want auth %s over TLS", out, tt.wantAuth)
			}

			// (4) ping of the SIP domain, answered over the outbound stream.
			if err := alice.Ping(ctx, sipDomain); err != nil {
				t.Errorf("ping %s: %v", sipDomain, err)
			}
		})
	}
}

// TestProsodyRefused: (5) a domain not in xmpp.federation is refused with a
// log line and a dialback error naming it; nothing reaches the handler.
func TestProsodyRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lab.DNS53(t, lab.ServerZone(prosodyDomain, prosodyAddr), lab.ServerZone(sipDomain, gatewayAddr))
	g := startGateway(t, []config.Partner{{Domain: "gmail.test", Auth: config.AuthDialback}}, nil)
	p := lab.StartProsody(t, lab.ProsodyConfig{Domain: prosodyDomain, Addr: prosodyAddr, Users: map[string]string{"alice": "alice-pw"}})
	alice := lab.Login(t, ctx, p.C2SAddr, p.JID("alice"), "alice-pw")
	if err := alice.SendMessage(ctx, "bob@"+sipDomain, "let me in"); err != nil {
		t.Fatal(err)
	}
	g.waitLog(t, "xmpp dialback refused", "pair=p.test->sip.test", "domain p.test is not in xmpp.federation (allowed: gmail.test)")
	// Prosody bounces the message to alice once dialback failed.
	bounce, err := alice.WaitFor(ctx, func(s lab.Stanza) bool { return s.Name == "message" && s.Type == "error" })
	if err != nil {
		t.Fatalf("alice got no error bounce: %v\nprosody log:\n%s", err, p.LogTail(40))
	}
	t.Logf("bounce seen by alice: %s", bounce.Raw)
	select {
	case st := <-g.inbox:
		t.Errorf("refused domain's stanza delivered: %s", st)
	default:
	}
	// Outbound too: the gateway does not send to an unlisted domain.
	err = g.srv.Send(ctx, &xmpp.Stanza{Name: "message", From: jid.MustParse("bob@" + sipDomain), To: jid.MustParse(p.JID("alice"))})
	if e, ok := err.(*xmpp.Error); !ok || e.Condition != xmpp.CondForbidden {
		t.Errorf("Send to unlisted domain = %v, want forbidden", err)
	}
}
