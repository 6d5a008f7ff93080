package checks

import (
	"context"
	"strings"
	"testing"
	"time"
)

func fixed(id string, st Status, requires ...string) Check {
	return Check{ID: id, Requires: requires, Run: func(context.Context, *Env) []Result {
		return []Result{{Target: "t-" + id, Status: st, Found: id + " ran"}}
	}}
}

func TestRunOrderAndPrerequisites(t *testing.T) {
	slow := Check{ID: "slow", Run: func(ctx context.Context, _ *Env) []Result {
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
		return []Result{pass("slow", "", "slow ran")}
	}}
	cs := []Check{
		slow,
		fixed("bad", Fail),
		fixed("after-bad", Pass, "bad"),
		fixed("after-slow", Pass, "slow"),
		fixed("after-skip", Pass, "after-bad"),
		fixed("unselected-req", Pass, "not-in-run"),
		{ID: "boom", Run: func(context.Context, *Env) []Result { panic("nil map") }},
		{ID: "empty", Run: func(context.Context, *Env) []Result { return nil }},
	}
	got := Run(context.Background(), &Env{}, cs)
	want := []struct {
		id     string
		status Status
		found  string
	}{
		{"slow", Pass, "slow ran"},
		{"bad", Fail, "bad ran"},
		{"after-bad", Skip, "prerequisite bad is fail for t-bad"},
		{"after-slow", Pass, "after-slow ran"},
		{"after-skip", Skip, "prerequisite after-bad is skip"},
		{"unselected-req", Pass, "unselected-req ran"},
		{"boom", Fail, "the probe crashed: nil map"},
		{"empty", Fail, "the probe returned no result"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].ID != w.id || got[i].Status != w.status || got[i].Found != w.found {
			t.Errorf("result %d = {%s %s %q}, want {%s %s %q}", i, got[i].ID, got[i].Status, got[i].Found, w.id, w.status, w.found)
		}
		if got[i].Duration <= 0 && got[i].Status != Skip {
			t.Errorf("result %d (%s) has no duration", i, got[i].ID)
		}
	}
}

func TestSelect(t *testing.T) {
	all := []Check{fixed("a", Pass), fixed("b", Pass), {ID: "peer", OptIn: true, Run: fixed("peer", Pass).Run}}
	ids := func(cs []Check) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.ID)
		}
		return strings.Join(s, ",")
	}
	tests := []struct {
		name       string
		only, skip []string
		online     bool
		want       string
		wantErr    string
	}{
		{name: "all", want: "a,b,peer"},
		{name: "only", only: []string{"b"}, want: "b"},
		{name: "skip", skip: []string{"a"}, want: "b,peer"},
		{name: "opt-in named", only: []string{"peer"}, want: "peer"},
		{name: "unknown only", only: []string{"dns.svr"}, wantErr: `unknown check ID "dns.svr"; valid IDs: a, b, peer`},
		{name: "unknown skip", skip: []string{"x"}, wantErr: `unknown check ID "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Select(all, tt.only, tt.skip, tt.online)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ids(got) != tt.want {
				t.Errorf("selected %s, want %s", ids(got), tt.want)
			}
		})
	}
	// Offline, an opt-in check stays in the report as an explained skip.
	sel, _ := Select(all, nil, nil, false)
	res := Run(context.Background(), &Env{}, sel)
	last := res[len(res)-1]
	if last.ID != "peer" || last.Status != Skip || !strings.Contains(last.Found, "--online") {
		t.Errorf("offline opt-in result = %+v", last)
	}
	sel, _ = Select(all, nil, nil, true)
	if res := Run(context.Background(), &Env{}, sel); res[len(res)-1].Status != Pass {
		t.Errorf("online opt-in result = %+v", res[len(res)-1])
	}
}
