package lab

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestEjabberd federates Debian's ejabberd (e.test) with Prosody (a.test)
// both ways by dialback, then checks that every process the harness started
// is gone once its test ended.
func TestEjabberd(t *testing.T) {
	DNS53(t, ServerZone("a.test", "127.0.1.1"), ServerZone("e.test", "127.0.1.3"))
	var tree []int
	t.Run("messages both ways with Prosody", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		p := StartProsody(t, ProsodyConfig{Domain: "a.test", Addr: "127.0.1.1", Users: map[string]string{"alice": "alice-pw"}})
		e := StartEjabberd(t, EjabberdConfig{Domain: "e.test", Addr: "127.0.1.3", Users: map[string]string{"carol": "carol-pw"}})
		tree = ejProcTree(e.pid)
		alice := Login(t, ctx, p.C2SAddr, p.JID("alice"), "alice-pw")
		carol := Login(t, ctx, e.C2SAddr, e.JID("carol"), "carol-pw")
		tests := []struct {
			name    string
			from    *Client
			fromJID string
			to      *Client
			toJID   string
			body    string
		}{
			{"ejabberd to Prosody", carol, e.JID("carol"), alice, p.JID("alice"), "от carol 👋"},
			{"Prosody to ejabberd", alice, p.JID("alice"), carol, e.JID("carol"), "from alice — 你好"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				start := time.Now()
				if err := tt.from.SendMessage(ctx, tt.toJID, tt.body); err != nil {
					t.Fatal(err)
				}
				got, err := tt.to.WaitFor(ctx, MessageFrom(tt.fromJID))
				if err != nil {
					t.Fatal(err)
				}
				if got.Body != tt.body {
					t.Errorf("body = %q, want %q", got.Body, tt.body)
				}
				t.Logf("delivered in %v", time.Since(start).Round(time.Millisecond))
			})
		}
		if !strings.Contains(e.Log(), "dialback") {
			t.Errorf("ejabberd's log never mentions dialback; tail:\n%s", e.LogTail(40))
		}
	})
	if len(tree) < 2 {
		t.Fatalf("ejabberd's process tree %v: want ejabberdctl and the Erlang VM under it", tree)
	}
	// Killed children are reaped by init: allow a moment, count zombies as gone.
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range tree {
		for ejAlive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("pid %d of ejabberd's tree %v still runs after its test ended", pid, tree)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// ejAlive tells whether pid exists and is not a zombie.
func ejAlive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}
