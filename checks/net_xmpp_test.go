package checks

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/internal/testenv"
)

// The listeners take port 5269 on their own 127.77.1.x address, which only
// the test namespace of scripts/test.sh allows.
func TestNetXMPP(t *testing.T) {
	testenv.Netns(t)
	startFakePeer(t, "127.77.1.1:5269", xmppAnswer, "")
	startFakePeer(t, "127.77.1.2:5269", nil, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	startFakePeer(t, "127.77.1.4:5269", nil, "") // black hole
	startFakePeer(t, "127.77.1.5:5269", func(to string) string {
		return `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' id='old' from='` + to + `'>`
	}, "")
	startFakePeer(t, "127.77.1.7:5269", func(string) string {
		return `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' id='e' version='1.0'>` +
			`<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`
	}, "")
	res := testResolver(t, `
xmpp      IN A 127.77.1.1
other     IN A 127.77.1.7
http      IN A 127.77.1.2
closed    IN A 127.77.1.3
hole      IN A 127.77.1.4
old       IN A 127.77.1.5
`)
	cases := []struct {
		name   string
		ext    string
		status Status
		found  string // a phrase Found must carry
	}{
		{"xmpp server with starttls", "xmpp.litware.test", Pass, "STARTTLS offered (required), dialback advertised"},
		{"pre-1.0 server", "old.litware.test", Pass, "no stream features"},
		{"another xmpp server", "other.litware.test", Warn, "stream error <host-unknown/>"},
		{"http on 5269", "http.litware.test", Fail, `not with an XMPP stream: "HTTP/1.1 400 Bad Request"`},
		{"closed port", "closed.litware.test", Fail, "refused"},
		{"black hole", "hole.litware.test", Fail, "no XMPP answer came before the deadline"},
		{"no A record", "missing.litware.test", Skip, "see dns.a"},
	}
	const budget = time.Second
	var fixes []string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), budget)
			defer cancel()
			start := time.Now()
			got := Run(ctx, &Env{Config: netConfig(tc.ext), Resolver: res}, []Check{netXMPPCheck})
			if d := time.Since(start); d > budget+300*time.Millisecond {
				t.Errorf("took %v, want it to end by the %v deadline", d, budget)
			}
			if len(got) != 1 {
				t.Fatalf("got %d results, want 1: %+v", len(got), got)
			}
			r := got[0]
			if r.ID != "net.xmpp" || r.Status != tc.status || !strings.Contains(r.Found, tc.found) {
				t.Fatalf("got %s %s %q, want %s with %q", r.ID, r.Status, r.Found, tc.status, tc.found)
			}
			if r.Status == Fail {
				if r.Fix == "" || slices.Contains(fixes, r.Fix) {
					t.Errorf("fix %q is empty or shared with another failure mode", r.Fix)
				}
				fixes = append(fixes, r.Fix)
			}
		})
	}
}

func TestNetXMPPSendsFirstSIPDomain(t *testing.T) {
	testenv.Netns(t)
	p := startFakePeer(t, "127.77.1.6:5269", xmppAnswer, "")
	res := testResolver(t, "xmpp IN A 127.77.1.6\n")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	got := Run(ctx, &Env{Config: netConfig("xmpp.litware.test"), Resolver: res}, []Check{netXMPPCheck})
	if got[0].Status != Pass || got[0].Target != "127.77.1.6:5269" {
		t.Fatalf("got %+v, want a pass for 127.77.1.6:5269", got[0])
	}
	if tos := p.received(); !slices.Equal(tos, []string{"litware.test"}) {
		t.Errorf("stream headers received to=%q, want one to the first SIP domain litware.test", tos)
	}
}

// Before go-live xgw serve is not running: the probe listens on
// xmpp.listen itself and only its own nonce coming back proves the path.
func TestNetXMPPStandIn(t *testing.T) {
	testenv.Netns(t)
	startFakePeer(t, "127.77.1.10:5269", xmppAnswer, "")
	res := testResolver(t, "here IN A 127.77.1.9\nelsewhere IN A 127.77.1.10\n")
	cases := []struct {
		name, ext string
		status    Status
		found     string
	}{
		{"path ends here", "here.litware.test", Pass, "a probe listener on 127.77.1.9:5269 answered"},
		{"forward points elsewhere", "elsewhere.litware.test", Fail, "but not this gateway"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := netConfig(tc.ext)
			cfg.XMPP.Listen = "127.77.1.9:5269"
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			got := Run(ctx, &Env{Config: cfg, Resolver: res}, []Check{netXMPPCheck})
			if len(got) != 1 || got[0].Status != tc.status || !strings.Contains(got[0].Found, tc.found) {
				t.Fatalf("got %+v, want %s with %q", got, tc.status, tc.found)
			}
		})
	}
}

// net.xmpp and net.hairpin both stand in on xmpp.listen. Against a target
// that accepts and stays silent, each must get the whole deadline and say
// so; when they took turns on the listener, the second only started once
// the first had used up the deadline and reported a connect timeout.
func TestNetProbesShareStandIn(t *testing.T) {
	testenv.Netns(t)
	startFakePeer(t, "127.77.1.11:5269", nil, "") // accepts, never answers
	cfg := netConfig("hole.litware.test")
	cfg.XMPP.Listen, cfg.XMPP.PublicIP, cfg.XMPP.PrivateIP = "127.77.1.12:5269", "127.77.1.11", "127.77.1.12"
	res := testResolver(t, "hole IN A 127.77.1.11\n")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	got := Run(ctx, &Env{Config: cfg, Resolver: res}, []Check{netXMPPCheck, netHairpinCheck})
	const silent = "connected to 127.77.1.11:5269 but no XMPP answer came before the deadline"
	if len(got) != 2 || got[0].Status != Fail || !strings.Contains(got[0].Found, silent) ||
		got[1].Status != Warn || !strings.Contains(got[1].Found, silent) {
		t.Fatalf("got %+v\nwant net.xmpp fail and net.hairpin warn, both with %q", got, silent)
	}
}
