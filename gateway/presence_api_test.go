package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/admin"
	"github.com/xgw-gateway/xgw/gateway/presenceapi"
)

// TestPresenceAPI: an XMPP user's presence that the gateway relays to a
// SIP watcher shows on the admin listener's presence API, by GET and on
// the stream, as `xgw serve` mounts it.
func TestPresenceAPI(t *testing.T) {
	l := startPresenceLoop(t)
	const carol, alice, token = "carol@peer.test", "alice@litware.test", "t0ken"

	adm := admin.New(http.NotFoundHandler(), l.srv.Ready, token)
	adm.Presence(presenceapi.NewHandler(l.srv.PresenceView()))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- admin.Serve(ctx, ln, adm) }()
	defer func() { cancel(); <-served }()
	base := "http://" + ln.Addr().String() + "/v1/presence/"
	get := func(path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	// alice (SIP) watches carol (XMPP); carol approves.
	_, res := l.subscribe(t, carol, 600)
	if res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE answered %d", res.StatusCode)
	}
	l.stanza(t, "subscribe at the peer", "subscribe", alice)
	recv(t, l.notifyIn, "pending NOTIFY")
	l.presence(t, carol, alice, "subscribed", "")
	recv(t, l.notifyIn, "approving NOTIFY")

	stream := get("stream?address=" + carol)
	defer stream.Body.Close()
	if stream.StatusCode != 200 {
		t.Fatalf("stream: %d", stream.StatusCode)
	}
	br := bufio.NewReader(stream.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, ":") {
		t.Fatalf("stream opened with %q, %v", line, err) // the opening comment: subscribed by now
	}
	nextEvent := func() presenceapi.Presence {
		t.Helper()
		var name, data string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("stream: %v", err)
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "" && name != "":
				var p presenceapi.Presence
				if name != "presence" || json.Unmarshal([]byte(data), &p) != nil {
					t.Fatalf("event %s data %s", name, data)
				}
				return p
			}
		}
	}

	const status = "Обед 🍜"
	l.presence(t, carol+"/desk", alice, "", "<show>away</show><status>"+status+"</status>")
	recv(t, l.notifyIn, "NOTIFY with the status")
	if p := nextEvent(); p.Address != carol || p.Side != "xmpp" || p.State != "away" || p.Status != status ||
		len(p.Resources) != 1 || p.Resources[0] != "desk" {
		t.Fatalf("first event %+v, want carol away on desk", p)
	}
	resp := get(carol)
	var p presenceapi.Presence
	err = json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || p.State != "away" || p.Status != status || p.Updated.IsZero() {
		t.Fatalf("GET %s: %d %+v %v", carol, resp.StatusCode, p, err)
	}

	l.presence(t, carol+"/desk", alice, "unavailable", "<status>gone</status>")
	recv(t, l.notifyIn, "NOTIFY of unavailable")
	if p := nextEvent(); p.Address != carol || p.State != "unavailable" || p.Status != "gone" || len(p.Resources) != 0 {
		t.Fatalf("second event %+v, want carol unavailable", p)
	}
	resp = get(alice)
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET %s (no NOTIFY with a PIDF yet): %d, want 404", alice, resp.StatusCode)
	}
}
