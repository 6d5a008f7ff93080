package checks

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/testenv"
)

func TestXMPPPeer(t *testing.T) {
	testenv.Netns(t) // the A fallback needs port 5269 on a 127.77.3.x address
	good := startFakePeer(t, "127.77.3.1:5269", xmppAnswer, "")
	startFakePeer(t, "127.77.3.2:5269", xmppAnswer, "")
	startFakePeer(t, "127.77.3.4:5269", nil, "") // black hole
	startFakePeer(t, "127.77.3.5:5269", func(string) string {
		return `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' id='e' version='1.0'>` +
			`<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no</text></stream:error>`
	}, "")
	res := testResolver(t, `
_xmpp-server._tcp.good.test.    IN SRV 0 5 5269 xmpp.good.test.
_xmpps-server._tcp.good.test.   IN SRV 0 5 5270 xmpp.good.test.
xmpp.good.test.                 IN A   127.77.3.1
fallback.test.                  IN A   127.77.3.2
_xmpp-server._tcp.noxmpp.test.  IN SRV 0 0 0 .
_xmpp-server._tcp.down.test.    IN SRV 0 5 5269 xmpp.down.test.
xmpp.down.test.                 IN A   127.77.3.3
_xmpp-server._tcp.multi.test.   IN SRV 10 5 5269 dead.multi.test.
_xmpp-server._tcp.multi.test.   IN SRV 20 5 5269 live.multi.test.
dead.multi.test.                IN A   127.77.3.3
live.multi.test.                IN A   127.77.3.1
_xmpp-server._tcp.hole.test.    IN SRV 0 5 5269 xmpp.hole.test.
xmpp.hole.test.                 IN A   127.77.3.4
_xmpp-server._tcp.wrong.test.   IN SRV 0 5 5269 xmpp.wrong.test.
xmpp.wrong.test.                IN A   127.77.3.5
`)
	want := []struct {
		domain string
		status Status
		found  string
	}{
		{"good.test", Pass, "127.77.3.1:5269 via _xmpp-server._tcp.good.test SRV (direct TLS _xmpps-server also published): XMPP stream opened"},
		{"fallback.test", Pass, "fallback to fallback.test:5269"},
		{"noxmpp.test", Fail, `target "."`},
		{"down.test", Fail, "connection to 127.77.3.3:5269 refused"},
		{"multi.test", Pass, "127.77.3.1:5269"}, // priority 10 refused, priority 20 answers
		{"hole.test", Fail, "no XMPP answer came before the deadline"},
		{"wrong.test", Warn, "stream error <host-unknown/>"},
		{"missing.test", Fail, "missing.test does not resolve"},
	}
	cfg := netConfig("xmpp.litware.test")
	for _, w := range want {
		cfg.XMPP.Federation = append(cfg.XMPP.Federation, config.Partner{Domain: w.domain, Auth: config.AuthDialback})
	}
	const budget = 1500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()
	got := Run(ctx, &Env{Config: cfg, Resolver: res}, []Check{xmppPeerCheck})
	if d := time.Since(start); d > budget+300*time.Millisecond {
		t.Errorf("took %v: partners must run concurrently under one deadline (%v)", d, budget)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		t.Run(w.domain, func(t *testing.T) {
			r := got[i]
			t.Logf("%s %s: %s | fix: %s", r.Status, r.Target, r.Found, r.Fix)
			if r.ID != "xmpp.peer" || r.Target != w.domain || r.Status != w.status || !strings.Contains(r.Found, w.found) {
				t.Errorf("got %s %s %s %q, want %s with %q", r.ID, r.Target, r.Status, r.Found, w.status, w.found)
			}
			if r.Status == Fail && r.Fix == "" {
				t.Error("a fail without a fix")
			}
		})
	}
	if tos := good.received(); !slices.Contains(tos, "good.test") {
		t.Errorf("good.test's server saw to=%q, want the partner domain", tos)
	}
}

func TestXMPPPeerIsOptIn(t *testing.T) {
	sel, err := Select([]Check{xmppPeerCheck}, nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	got := Run(context.Background(), &Env{Config: netConfig("xmpp.litware.test")}, sel)
	if len(got) != 1 || got[0].Status != Skip || !strings.Contains(got[0].Found, "--online") {
		t.Fatalf("got %+v, want a skip pointing at --online", got)
	}
}
