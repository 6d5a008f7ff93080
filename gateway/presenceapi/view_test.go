package presenceapi

import (
	"fmt"
	"slices"
	"testing"

	"mellium.im/xmpp/stanza"

	"github.com/xgw-gateway/xgw/gateway/translate"
)

func TestViewXMPPResources(t *testing.T) {
	v := NewView(10)
	away := translate.Presence{Show: "away", Status: "lunch"}
	off := translate.Presence{Type: stanza.UnavailablePresence, Status: "bye"}
	steps := []struct {
		name      string
		resource  string
		p, agg    translate.Presence
		state     string
		status    string
		resources []string
	}{
		{"first resource", "phone", translate.Presence{}, translate.Presence{}, "available", "", []string{"phone"}},
		{"second resource away", "laptop", away, away, "away", "lunch", []string{"laptop", "phone"}},
		{"one leaves", "laptop", off, translate.Presence{}, "available", "", []string{"phone"}},
		{"all leave", "", off, off, "unavailable", "bye", nil},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			v.SetXMPP("alice@peer.test", s.resource, s.p, s.agg)
			got, ok := v.Get("alice@peer.test")
			if !ok || got.Side != SideXMPP || got.State != s.state || got.Status != s.status || !slices.Equal(got.Resources, s.resources) {
				t.Fatalf("got %+v, %v; want state %s status %q resources %v", got, ok, s.state, s.status, s.resources)
			}
		})
	}
}

func TestViewEvictsOldest(t *testing.T) {
	v := NewView(3)
	for i := range 5 {
		v.SetSIP(fmt.Sprintf("u%d@litware.test", i), translate.Presence{})
	}
	// u2 changes, so u3 is now the least recently changed.
	v.SetSIP("u2@litware.test", translate.Presence{Show: "dnd"})
	v.SetSIP("u5@litware.test", translate.Presence{})
	if v.Len() != 3 {
		t.Fatalf("Len %d, want 3", v.Len())
	}
	for addr, want := range map[string]bool{"u0@litware.test": false, "u3@litware.test": false,
		"u2@litware.test": true, "u4@litware.test": true, "u5@litware.test": true} {
		if _, ok := v.Get(addr); ok != want {
			t.Errorf("Get(%s) ok=%v, want %v", addr, ok, want)
		}
	}
}

func TestSubscribeFilterRepeatOverflow(t *testing.T) {
	v := NewView(10)
	sub := v.Subscribe([]string{"bob@litware.test"}, 1)
	defer sub.Cancel()
	v.SetSIP("carol@litware.test", translate.Presence{Show: "away"}) // filtered out
	v.SetSIP("bob@litware.test", translate.Presence{Show: "away"})
	v.SetSIP("bob@litware.test", translate.Presence{Show: "away"}) // a repeat is no change
	if got := <-sub.C; got.Address != "bob@litware.test" || got.State != "away" {
		t.Fatalf("first change %+v, want bob away", got)
	}
	select {
	case <-sub.Overflow:
		t.Fatal("overflow after one change on a buffer of one")
	default:
	}
	v.SetSIP("bob@litware.test", translate.Presence{Show: "dnd"})
	v.SetSIP("bob@litware.test", translate.Presence{Show: "xa"})
	select {
	case <-sub.Overflow:
	default:
		t.Fatal("two unread changes on a buffer of one did not overflow")
	}
	v.mu.Lock()
	n := len(v.subs)
	v.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d subscriptions left after overflow, want 0", n)
	}
}
