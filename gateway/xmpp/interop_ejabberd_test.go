package xmpp_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/gateway/xmpp"
	"github.com/xgw-gateway/xgw/internal/lab"
)

// ejabberd serves e.test on its own address next to Prosody's.
const (
	ejabberdDomain = "e.test"
	ejabberdAddr   = "127.0.1.3"
)

// TestEjabberdInterop runs the Prosody interop cases against Debian's
// ejabberd 23.01: an inbound message after dialback, an outbound one, and
// a ping of the SIP domain. The gateway offers no STARTTLS: ejabberd would
// try SASL EXTERNAL first and fall back to dialback, which the Prosody
// cases cover already.
func TestEjabberdInterop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	lab.DNS53(t, lab.ServerZone(ejabberdDomain, ejabberdAddr), lab.ServerZone(sipDomain, gatewayAddr))
	g := startGateway(t, []config.Partner{{Domain: ejabberdDomain, Auth: config.AuthDialback}}, nil)
	e := lab.StartEjabberd(t, lab.EjabberdConfig{Domain: ejabberdDomain, Addr: ejabberdAddr,
		Users: map[string]string{"carol": "carol-pw"}})
	t.Logf("ejabberd started in %v", e.StartTime)
	carol := lab.Login(t, ctx, e.C2SAddr, e.JID("carol"), "carol-pw")

	// Inbound: ejabberd -> gateway, after dialback.
	if err := carol.SendMessage(ctx, "bob@"+sipDomain, "hello from ejabberd"); err != nil {
		t.Fatal(err)
	}
	st := g.recv(t, ctx)
	if st.Name != "message" || st.From.Bare().String() != e.JID("carol") || st.To.String() != "bob@"+sipDomain ||
		!strings.Contains(string(st.Inner), "hello from ejabberd") {
		t.Errorf("gateway got %s", st)
	}
	if in := g.stream(t, "in"); in.Auth != "dialback" || in.TLS {
		t.Errorf("inbound stream = %+v, want dialback without TLS", in)
	}

	// Outbound: gateway -> ejabberd user.
	reply := &xmpp.Stanza{Name: "message", From: st.To, To: st.From, Type: "chat",
		Inner: []byte("<body>hello carol</body>")}
	if err := g.srv.Send(ctx, reply); err != nil {
		t.Fatal(err)
	}
	got, err := carol.WaitFor(ctx, lab.MessageFrom("bob@"+sipDomain))
	if err != nil {
		t.Fatal(err)
	}
	if got.Body != "hello carol" {
		t.Errorf("carol got %q", got.Body)
	}
	if out := g.stream(t, "out"); out.Auth != "dialback" {
		t.Errorf("outbound stream = %+v, want dialback", out)
	}

	// Ping of the SIP domain, relayed by ejabberd and answered by the gateway.
	if err := carol.Ping(ctx, sipDomain); err != nil {
		t.Errorf("ping %s: %v", sipDomain, err)
	}
}
