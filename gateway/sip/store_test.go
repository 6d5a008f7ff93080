package sip_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	gwsip "github.com/xgw-gateway/xgw/gateway/sip"
)

var _ gwsip.Store = (*gwsip.MemoryStore)(nil)
var _ gwsip.Store = (*gwsip.BoltStore)(nil)

// Both stores keep what was put last, forget what was deleted, and give
// back every field.
func TestStores(t *testing.T) {
	stores := map[string]func(t *testing.T) gwsip.Store{
		"memory": func(*testing.T) gwsip.Store { return gwsip.NewMemoryStore() },
		"bbolt": func(t *testing.T) gwsip.Store {
			st, err := gwsip.OpenBoltStore(filepath.Join(t.TempDir(), "s.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
	exp := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	a := gwsip.Subscription{
		ID:   gwsip.DialogID{CallID: "c1@edge", LocalTag: "l1", RemoteTag: "r1"},
		Role: gwsip.RoleNotifier, Event: "presence", EventID: "7",
		LocalURI: "sip:romeo@xmpp.test", RemoteURI: "sip:alice@litware.test",
		RemoteTarget: "sip:alice@10.0.0.1;transport=tls", RouteSet: []string{"sip:edge.litware.test;lr", "sip:p2.litware.test;lr"},
		LocalCSeq: 9, RemoteCSeq: 3, Interval: time.Hour, Expires: exp, State: gwsip.StateActive, Created: exp.Add(-time.Hour),
	}
	b := a
	b.ID.RemoteTag, b.Role, b.RouteSet = "r2", gwsip.RoleSubscriber, nil
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := open(t)
			for _, s := range []gwsip.Subscription{a, b} {
				if err := st.Put(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			a2 := a
			a2.LocalCSeq = 10
			if err := st.Put(ctx, a2); err != nil {
				t.Fatal(err)
			}
			if err := st.Delete(ctx, b.ID); err != nil {
				t.Fatal(err)
			}
			all, err := st.All(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 1 {
				t.Fatalf("All = %d subscriptions, want 1", len(all))
			}
			got := all[0]
			if got.ID != a2.ID || got.LocalCSeq != 10 || !slices.Equal(got.RouteSet, a2.RouteSet) || !got.Expires.Equal(exp) ||
				got.Role != a2.Role || got.EventID != "7" || got.Interval != time.Hour || got.RemoteTarget != a2.RemoteTarget {
				t.Errorf("got %+v\nwant %+v", got, a2)
			}
			if err := st.Delete(ctx, gwsip.DialogID{CallID: "absent"}); err != nil {
				t.Errorf("deleting an absent dialog: %v", err)
			}
		})
	}
}
