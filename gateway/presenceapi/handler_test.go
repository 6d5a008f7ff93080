package presenceapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xgw-gateway/xgw/gateway/admin"
	"github.com/xgw-gateway/xgw/gateway/translate"
)

const token = "s3cret"

// adminWith is the real admin handler with the presence API of v mounted.
func adminWith(v *View, tok string) (*admin.Handler, *Handler) {
	adm := admin.New(http.NotFoundHandler(), func() error { return nil }, tok)
	api := NewHandler(v)
	adm.Presence(api)
	return adm, api
}

func TestGetPresence(t *testing.T) {
	v := NewView(10)
	v.now = func() time.Time { return time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC) }
	v.SetSIP("bob@litware.test", translate.Presence{Show: "away", Status: "en réunion"})
	v.SetXMPP("alice@peer.test", "phone", translate.Presence{Show: "chat"}, translate.Presence{Show: "chat"})
	v.SetXMPP("carol@peer.test", "", translate.Presence{Type: stanza.UnavailablePresence}, translate.Presence{Type: stanza.UnavailablePresence})
	cases := []struct {
		name     string
		token    string // configured
		auth     string // sent
		path     string
		status   int
		contains string
	}{
		{"sip user", token, "Bearer " + token, "/v1/presence/bob@litware.test", 200,
			`{"address":"bob@litware.test","side":"sip","state":"away","status":"en réunion","updated":"2026-11-25T13:00:00Z"}`},
		{"xmpp user with a resource", token, "Bearer " + token, "/v1/presence/alice@peer.test", 200,
			`{"address":"alice@peer.test","side":"xmpp","state":"chat","status":"","resources":["phone"],"updated":"2026-11-25T13:00:00Z"}`},
		{"xmpp user gone", token, "Bearer " + token, "/v1/presence/carol@peer.test", 200, `"state":"unavailable"`},
		{"domain case folded", token, "Bearer " + token, "/v1/presence/bob@LITWARE.test", 200, `"address":"bob@litware.test"`},
		{"unknown", token, "Bearer " + token, "/v1/presence/nobody@litware.test", 404, `no presence known for nobody@litware.test`},
		{"no localpart", token, "Bearer " + token, "/v1/presence/litware.test", 400, `expected a bare user@domain`},
		{"resource", token, "Bearer " + token, "/v1/presence/bob@litware.test%2Fphone", 400, `expected a bare user@domain`},
		{"empty domain", token, "Bearer " + token, "/v1/presence/bob@", 400, `expected a bare user@domain`},
		{"no token sent", token, "", "/v1/presence/bob@litware.test", 401, `Authorization: Bearer`},
		{"wrong token", token, "Bearer nope", "/v1/presence/bob@litware.test", 401, `Authorization: Bearer`},
		{"no token configured", "", "", "/v1/presence/bob@litware.test", 403, `set admin.token`},
		{"no token configured, one sent", "", "Bearer " + token, "/v1/presence/bob@litware.test", 403, `set admin.token`},
		{"stream, bad filter", token, "Bearer " + token, "/v1/presence/stream?address=bob", 400, `address \"bob\"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			adm, _ := adminWith(v, c.token)
			req := httptest.NewRequest("GET", c.path, nil)
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			rec := httptest.NewRecorder()
			adm.ServeHTTP(rec, req)
			body := rec.Body.String()
			if rec.Code != c.status || !strings.Contains(body, c.contains) {
				t.Fatalf("GET %s: %d %s\nwant %d containing %s", c.path, rec.Code, body, c.status, c.contains)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Errorf("body is not JSON: %s", body)
			}
		})
	}
}

// serveAdmin serves h on a loopback socket until the test ends.
func serveAdmin(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- admin.Serve(ctx, ln, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return "http://" + ln.Addr().String()
}

// sseEvent is one server-sent event.
type sseEvent struct{ name, data string }

// openStream GETs url and returns the response and a reader of its events;
// comments are skipped.
func openStream(t *testing.T, ctx context.Context, url string) (*http.Response, func() (sseEvent, error)) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	br := bufio.NewReader(resp.Body)
	next := func() (sseEvent, error) {
		var ev sseEvent
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return ev, err
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "" && ev.name != "":
				return ev, nil
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[len("data: "):]
			}
		}
	}
	return resp, next
}

// subsOf counts the View's subscriptions.
func subsOf(v *View) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.subs)
}

// waitSubs waits up to 5 s for the View to have n subscriptions.
func waitSubs(t *testing.T, v *View, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); subsOf(v) != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions, want %d", subsOf(v), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStreamTwoChanges(t *testing.T) {
	v := NewView(10)
	adm, _ := adminWith(v, token)
	base := serveAdmin(t, adm)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, next := openStream(t, ctx, base+"/v1/presence/stream?address=bob@litware.test&address=alice@peer.test")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	waitSubs(t, v, 1)
	v.SetSIP("carol@litware.test", translate.Presence{}) // not asked for
	v.SetSIP("bob@litware.test", translate.Presence{Show: "dnd", Status: "Besprechung"})
	v.SetXMPP("alice@peer.test", "laptop", translate.Presence{Show: "xa"}, translate.Presence{Show: "xa"})
	want := []struct{ addr, side, state string }{
		{"bob@litware.test", SideSIP, "dnd"},
		{"alice@peer.test", SideXMPP, "xa"},
	}
	for _, w := range want {
		ev, err := next()
		if err != nil {
			t.Fatal(err)
		}
		var p Presence
		if err := json.Unmarshal([]byte(ev.data), &p); err != nil {
			t.Fatalf("event data %q: %v", ev.data, err)
		}
		if ev.name != "presence" || p.Address != w.addr || p.Side != w.side || p.State != w.state {
			t.Fatalf("event %s %+v, want presence of %s (%s) %s", ev.name, p, w.addr, w.side, w.state)
		}
	}
	// The client goes away: its subscription ends with it.
	cancel()
	waitSubs(t, v, 0)
}

func TestStreamHeartbeatAndLimit(t *testing.T) {
	v := NewView(10)
	adm, api := adminWith(v, token)
	api.MaxStreams, api.Heartbeat = 1, 20*time.Millisecond
	base := serveAdmin(t, adm)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, _ := openStream(t, ctx, base+"/v1/presence/stream")
	br := bufio.NewReader(resp.Body)
	for beats := 0; beats < 2; {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == ": heartbeat\n" {
			beats++
		}
	}
	second, _ := openStream(t, ctx, base+"/v1/presence/stream")
	if second.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second stream with MaxStreams 1: %d, want 503", second.StatusCode)
	}
}

func TestStreamOverflow(t *testing.T) {
	v := NewView(10)
	adm, api := adminWith(v, token)
	api.StreamBuf = 1
	base := serveAdmin(t, adm)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, next := openStream(t, ctx, base+"/v1/presence/stream")
	waitSubs(t, v, 1)
	// Changes come faster than one socket write each: the buffer of one
	// fills and the View drops the stream instead of waiting for it.
	for i := 0; subsOf(v) > 0; i++ {
		if i == 1_000_000 {
			t.Fatal("a million changes did not overflow a buffer of one")
		}
		v.SetSIP("bob@litware.test", translate.Presence{Status: fmt.Sprint(i)})
	}
	var last sseEvent
	for {
		ev, err := next()
		if err != nil {
			break // the gateway closed the stream
		}
		last = ev
	}
	if last.name != "overflow" || !strings.Contains(last.data, "reconnect") {
		t.Fatalf("last event %+v, want overflow", last)
	}
}

// A SIGHUP that sets admin.token (admin.Handler.SetToken) turns the API
// on; one that clears it turns it off again.
func TestTokenReload(t *testing.T) {
	v := NewView(10)
	v.SetSIP("bob@litware.test", translate.Presence{})
	adm, _ := adminWith(v, "")
	for _, step := range []struct {
		name   string
		token  string
		status int
	}{
		{"no token", "", http.StatusForbidden},
		{"token set", token, http.StatusOK},
		{"token cleared", "", http.StatusForbidden},
	} {
		t.Run(step.name, func(t *testing.T) {
			adm.SetToken(step.token)
			req := httptest.NewRequest("GET", "/v1/presence/bob@litware.test", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			rec := httptest.NewRecorder()
			adm.ServeHTTP(rec, req)
			if rec.Code != step.status {
				t.Fatalf("%d %s, want %d", rec.Code, rec.Body, step.status)
			}
		})
	}
}
