package gateway

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gosip "github.com/emiago/sipgo/sip"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xgw-gateway/xgw/gateway/sip"
	"github.com/xgw-gateway/xgw/gateway/translate"
)

// XMPP subscribe/probe/unsubscribe from X to U, against the subscriber
// dialogs of the pair (RFC 7248 §4).
func TestDecideWatch(t *testing.T) {
	act, pend := sip.StateActive, sip.StatePending
	tests := []struct {
		name   string
		typ    stanza.PresenceType
		states []sip.State
		want   xmppAction
	}{
		{"subscribe, no dialog", stanza.SubscribePresence, nil, actSubscribe},
		{"subscribe, pending", stanza.SubscribePresence, []sip.State{pend}, actNone},
		{"subscribe, active", stanza.SubscribePresence, []sip.State{act}, actReplySubscribed},
		{"subscribe, pending and active", stanza.SubscribePresence, []sip.State{pend, act}, actReplySubscribed},
		{"probe, no dialog", stanza.ProbePresence, nil, actSubscribe},
		{"probe, pending", stanza.ProbePresence, []sip.State{pend}, actNone},
		{"probe, active", stanza.ProbePresence, []sip.State{act}, actReplyPresence},
		{"unsubscribe, no dialog", stanza.UnsubscribePresence, nil, actNone},
		{"unsubscribe, pending", stanza.UnsubscribePresence, []sip.State{pend}, actUnsubscribe},
		{"unsubscribe, active", stanza.UnsubscribePresence, []sip.State{act}, actUnsubscribe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decideWatch(tt.typ, tt.states); got != tt.want {
				t.Errorf("decideWatch(%q, %v) = %s, want %s", tt.typ, tt.states, got, tt.want)
			}
		})
	}
}

// XMPP stanzas from X to U, against one notifier dialog (RFC 7248 §5).
func TestNotifyFor(t *testing.T) {
	act, pend := sip.StateActive, sip.StatePending
	tests := []struct {
		name       string
		typ        stanza.PresenceType
		cur        sip.State
		wantOK     bool
		wantState  sip.State
		wantReason string
	}{
		{"subscribed approves pending", stanza.SubscribedPresence, pend, true, act, ""},
		{"subscribed again on active", stanza.SubscribedPresence, act, false, "", ""},
		{"unsubscribed denies pending", stanza.UnsubscribedPresence, pend, true, sip.StateTerminated, "rejected"},
		{"unsubscribed revokes active", stanza.UnsubscribedPresence, act, true, sip.StateTerminated, "rejected"},
		{"available to active", stanza.AvailablePresence, act, true, act, ""},
		{"unavailable to active", stanza.UnavailablePresence, act, true, act, ""},
		{"available hidden while pending", stanza.AvailablePresence, pend, false, "", ""},
		{"subscribe is not a NOTIFY", stanza.SubscribePresence, act, false, "", ""},
		{"probe is not a NOTIFY", stanza.ProbePresence, act, false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, ok := notifyFor(tt.typ, tt.cur)
			if ok != tt.wantOK || n.State != tt.wantState || n.Reason != tt.wantReason {
				t.Errorf("notifyFor(%q, %s) = %+v %v, want state %q reason %q ok %v", tt.typ, tt.cur, n, ok, tt.wantState, tt.wantReason, tt.wantOK)
			}
		})
	}
}

// Subscription-State of a NOTIFY on our subscription -> stanzas for X.
func TestDecideNotify(t *testing.T) {
	const (
		sub   = stanza.SubscribedPresence
		unsub = stanza.UnsubscribedPresence
		avail = stanza.AvailablePresence
		unav  = stanza.UnavailablePresence
	)
	tests := []struct {
		name                string
		header              string
		told, pidf, leaving bool
		want                []stanza.PresenceType
		wantTold, wantResub bool
	}{
		{"first active with PIDF", "active;expires=600", false, true, false, []stanza.PresenceType{sub, avail}, true, false},
		{"first active without body", "active", false, false, false, []stanza.PresenceType{sub}, true, false},
		{"active again with PIDF", "active;expires=300", true, true, false, []stanza.PresenceType{avail}, true, false},
		{"active again without body", "active", true, false, false, nil, true, false},
		{"pending", "pending;expires=600", false, false, false, nil, false, false},
		{"rejected after active", "terminated;reason=rejected", true, false, false, []stanza.PresenceType{unsub, unav}, false, false},
		{"rejected while pending", "terminated;reason=rejected", false, false, false, []stanza.PresenceType{unsub}, false, false},
		{"noresource", "terminated;reason=noresource", false, false, false, []stanza.PresenceType{unsub}, false, false},
		{"no reason", "terminated", true, false, false, []stanza.PresenceType{unsub, unav}, false, false},
		{"deactivated: retry", "terminated;reason=deactivated", true, false, false, []stanza.PresenceType{unav}, false, true},
		{"timeout: retry", "terminated;reason=timeout", true, false, false, []stanza.PresenceType{unav}, false, true},
		{"giveup while pending: retry", "terminated;reason=giveup;retry-after=60", false, false, false, nil, false, true},
		{"final NOTIFY after our unsubscribe", "terminated;reason=timeout", true, false, true, nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := translate.ParseSubscriptionState(tt.header)
			if err != nil {
				t.Fatal(err)
			}
			got := decideNotify(st, tt.told, tt.pidf, tt.leaving)
			if fmt.Sprint(got.Stanzas) != fmt.Sprint(tt.want) || got.Told != tt.wantTold || got.Resubscribe != tt.wantResub {
				t.Errorf("decideNotify(%q, told=%v, pidf=%v, leaving=%v) = %+v, want stanzas %v told %v resubscribe %v",
					tt.header, tt.told, tt.pidf, tt.leaving, got, tt.want, tt.wantTold, tt.wantResub)
			}
		})
	}
}

// A user's presence over resources: the latest available resource wins;
// unavailable once none is left, keeping the last status text.
func TestXMPPPresenceAggregate(t *testing.T) {
	x := jid.MustParse("bob@xmpp.test")
	var b presenceBook
	if _, ok := b.xmppPresenceOf(x); ok {
		t.Fatal("presence known before any stanza")
	}
	steps := []struct {
		name, res           string
		p                   translate.Presence
		wantType            stanza.PresenceType
		wantShow, wantState string
	}{
		{"phone available", "phone", translate.Presence{Status: "on the go"}, "", "", "on the go"},
		{"desk away", "desk", translate.Presence{Show: "away", Status: "lunch"}, "", "away", "lunch"},
		{"phone chat wins as latest", "phone", translate.Presence{Show: "chat"}, "", "chat", ""},
		{"phone leaves: desk is left", "phone", translate.Presence{Type: stanza.UnavailablePresence}, "", "away", "lunch"},
		{"desk leaves", "desk", translate.Presence{Type: stanza.UnavailablePresence, Status: "bye"}, stanza.UnavailablePresence, "", "bye"},
		{"back, then bare unavailable clears all", "", translate.Presence{Type: stanza.UnavailablePresence}, stanza.UnavailablePresence, "", ""},
	}
	for _, s := range steps {
		if s.name == "back, then bare unavailable clears all" {
			b.setXMPP(x, "tablet", translate.Presence{Show: "dnd"}, true)
		}
		got, kept := b.setXMPP(x, s.res, s.p, true)
		if !kept {
			t.Errorf("%s: presence of a watched user not kept", s.name)
		}
		if got.Type != s.wantType || got.Show != s.wantShow || got.Status != s.wantState {
			t.Errorf("%s: aggregate %+v, want type %q show %q status %q", s.name, got, s.wantType, s.wantShow, s.wantState)
		}
	}
}

// Presence of users nobody on the SIP side watches is not kept, and the
// resources and users kept are bounded.
func TestXMPPPresenceBounds(t *testing.T) {
	t.Run("unwatched senders leave the book empty", func(t *testing.T) {
		var b presenceBook
		for i := range 1000 {
			x := jid.MustParse(fmt.Sprintf("u%d@peer.test", i))
			if _, kept := b.setXMPP(x, "r", translate.Presence{Show: "chat"}, false); kept {
				t.Fatalf("%s: presence kept without a dialog", x)
			}
			b.setXMPP(x, "r", translate.Presence{Type: stanza.UnavailablePresence}, false)
		}
		if n := len(b.xmpp); n != 0 {
			t.Errorf("book holds %d users, want 0", n)
		}
	})
	t.Run("unwatched presence drops a kept entry", func(t *testing.T) {
		var b presenceBook
		x := jid.MustParse("bob@xmpp.test")
		b.setXMPP(x, "r", translate.Presence{}, true)
		b.setXMPP(x, "r", translate.Presence{}, false)
		if _, ok := b.xmppPresenceOf(x); ok {
			t.Error("presence still known after the last watcher left")
		}
	})
	t.Run("resources capped, oldest evicted", func(t *testing.T) {
		var b presenceBook
		x := jid.MustParse("bob@xmpp.test")
		for i := range maxXMPPResources + 10 {
			b.setXMPP(x, fmt.Sprintf("r%d", i), translate.Presence{Status: fmt.Sprint(i)}, true)
		}
		xp := b.xmpp[x.String()]
		if n := len(xp.res); n != maxXMPPResources {
			t.Errorf("%d resources kept, want %d", n, maxXMPPResources)
		}
		if _, ok := xp.res["r0"]; ok {
			t.Error("oldest resource r0 still kept")
		}
		if got, _ := b.xmppPresenceOf(x); got.Status != fmt.Sprint(maxXMPPResources+9) {
			t.Errorf("aggregate status %q, want the latest", got.Status)
		}
	})
	t.Run("users capped", func(t *testing.T) {
		var b presenceBook
		b.init()
		for i := range maxXMPPUsers {
			b.xmpp[fmt.Sprintf("u%d@peer.test", i)] = &xmppPresence{res: map[string]stampedPresence{}}
		}
		if _, kept := b.setXMPP(jid.MustParse("new@peer.test"), "r", translate.Presence{}, true); kept {
			t.Error("presence kept beyond maxXMPPUsers")
		}
		if n := len(b.xmpp); n != maxXMPPUsers {
			t.Errorf("book holds %d users, want %d", n, maxXMPPUsers)
		}
	})
}

// Wire-level: a NOTIFY as the Edge delivers it (testdata/presence/notify/
// NAME.sip) and the stanzas X gets, with the answer (NAME.golden).
// go test ./gateway -run TestReadNotifyGolden -update rewrites the golden
// files.
func TestReadNotifyGolden(t *testing.T) {
	pair := presencePair{x: jid.MustParse("bob@xmpp.test"), u: jid.MustParse("alice@litware.test")}
	tests := []struct {
		name          string
		told, leaving bool
	}{
		{"active-first-away", false, false},
		{"active-closed", true, false},
		{"active-no-body", false, false},
		{"pending", false, false},
		{"terminated-rejected", true, false},
		{"terminated-deactivated", true, false},
		{"terminated-timeout", true, true},
		{"wrong-body-type", false, false},
		{"bad-pidf", false, false},
		{"bad-state", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join("testdata", "presence", "notify")
			wire, err := os.ReadFile(filepath.Join(dir, tt.name+".sip"))
			if err != nil {
				t.Fatal(err)
			}
			msg, err := gosip.NewParser().ParseSIP(wire)
			if err != nil {
				t.Fatalf("fixture does not parse: %v", err)
			}
			req, ok := msg.(*gosip.Request)
			if !ok {
				t.Fatalf("fixture is a %T, want a request", msg)
			}
			r := readNotify(req, pair, tt.told, tt.leaving)
			var b strings.Builder
			fmt.Fprintf(&b, "told=%v leaving=%v\nanswer %d\nresubscribe %v\n", tt.told, tt.leaving, r.Status, r.Out.Resubscribe)
			if r.Cause != nil {
				fmt.Fprintf(&b, "cause %v\n", r.Cause)
			}
			for _, p := range r.Stanzas {
				b.Write(p.AppendXML(nil))
				b.WriteByte('\n')
			}
			golden := filepath.Join(dir, tt.name+".golden")
			if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if b.String() != string(want) {
				t.Errorf("got:\n%s\nwant (%s):\n%s", b.String(), golden, want)
			}
		})
	}
}
