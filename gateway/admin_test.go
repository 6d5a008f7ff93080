package gateway_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway"
	"github.com/xgw-gateway/xgw/gateway/admin"
	"github.com/xgw-gateway/xgw/gateway/metrics"
	gwsip "github.com/xgw-gateway/xgw/gateway/sip"
)

// adminLoop is the loopback gateway with metrics, behind a real admin
// listener on 127.0.0.1.
func adminLoop(t *testing.T, token string, opts ...gateway.Option) (*loop, *httptest.Server) {
	t.Helper()
	m := metrics.New()
	l := startLoop(t, append([]gateway.Option{gateway.WithMetrics(m)}, opts...)...)
	if err := m.Register(metrics.NewStateCollector(l.srv)); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(admin.New(m.Handler(), l.srv.Ready, token))
	t.Cleanup(hs.Close)
	return l, hs
}

// get returns the status and body of GET path with an optional token.
func get(t *testing.T, hs *httptest.Server, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", hs.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// scrape reads /metrics into series -> value; series are written as
// exposed: name{labels}, labels in alphabetical order.
func scrape(t *testing.T, hs *httptest.Server, token string) map[string]float64 {
	t.Helper()
	status, body := get(t, hs, "/metrics", token)
	if status != 200 {
		t.Fatalf("/metrics answered %d: %s", status, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("unparsable series %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetrics(t *testing.T) {
	const token = "s3cret"
	l, hs := adminLoop(t, token)

	// One message each way, one SIP message bounced by the peer.
	if got := l.sipMessage("bob@peer.test", "text/plain;charset=UTF-8", "héllo"); got != 200 {
		t.Fatalf("SIP MESSAGE status %d", got)
	}
	recv(t, l.peerIn, "stanza at the peer")
	l.xmppMessage("carol@peer.test", "alice@litware.test", "<body>hi</body>")
	recv(t, l.edgeIn, "MESSAGE at the Edge")
	if got := l.sipMessage("nobody@peer.test", "text/plain", "anyone?"); got != 200 {
		t.Fatalf("SIP MESSAGE status %d", got)
	}
	recv(t, l.peerIn, "text at the peer")
	recv(t, l.edgeIn, "bounce notice at the Edge")

	// The bounce notice's counter follows the MESSAGE it sends: wait for
	// its answer to be counted rather than racing it.
	var got map[string]float64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		got = scrape(t, hs, token)
		if got[`xgw_sip_requests_total{direction="out",method="MESSAGE",status_class="2xx"}`] == 2 {
			break
		}
	}
	tests := []struct {
		series string
		want   float64
	}{
		{`xgw_relayed_messages_total{direction="sip_to_xmpp"}`, 2},
		{`xgw_relayed_messages_total{direction="xmpp_to_sip"}`, 1},
		{`xgw_relay_latency_seconds_count{direction="sip_to_xmpp"}`, 2},
		{`xgw_relay_latency_seconds_count{direction="xmpp_to_sip"}`, 1},
		{`xgw_stanzas_total{direction="out",kind="message"}`, 2},
		{`xgw_stanzas_total{direction="in",kind="message"}`, 2}, // carol's message and the bounce
		{`xgw_sip_requests_total{direction="in",method="MESSAGE",status_class="2xx"}`, 2},
		{`xgw_sip_requests_total{direction="out",method="MESSAGE",status_class="2xx"}`, 2}, // carol's, the notice
		{`xgw_bounces_total{cause="item-not-found",side="sip"}`, 1},
		{`xgw_dialback_total{direction="in",result="valid"}`, 1},
		{`xgw_dialback_total{direction="out",result="valid"}`, 1},
		{`xgw_xmpp_streams{direction="in",partner="peer.test",state="authenticated"}`, 1},
		{`xgw_xmpp_streams{direction="out",partner="peer.test",state="authenticated"}`, 1},
		{`xgw_sip_subscriptions`, 0},
		{`xgw_edge_up`, 0}, // keepalive off in the loop
	}
	for _, tt := range tests {
		t.Run(tt.series, func(t *testing.T) {
			v, ok := got[tt.series]
			if !ok || v != tt.want {
				t.Errorf("%s = %v (present %v), want %v", tt.series, v, ok, tt.want)
			}
		})
	}
	for s := range got {
		if strings.HasPrefix(s, "xgw_bounces_total") && !strings.Contains(s, `cause="item-not-found"`) {
			t.Errorf("unexpected bounce series %s", s)
		}
	}

	t.Run("token", func(t *testing.T) {
		for _, tok := range []string{"", "wrong"} {
			if status, body := get(t, hs, "/metrics", tok); status != 401 || !strings.Contains(body, "Authorization: Bearer") {
				t.Errorf("token %q: %d %s, want 401 naming the header", tok, status, body)
			}
		}
		if status, _ := get(t, hs, "/healthz", ""); status != 200 {
			t.Errorf("/healthz without a token: %d, want 200 (probes carry no token)", status)
		}
	})
	t.Run("check status", func(t *testing.T) {
		m := metrics.New()
		m.SetChecks([]metrics.CheckResult{{ID: "dns.srv", Target: "litware.test", Status: 2}}, time.Unix(1700000000, 0))
		h := httptest.NewServer(admin.New(m.Handler(), func() error { return nil }, ""))
		defer h.Close()
		got := scrape(t, h, "")
		if got[`xgw_check_status{id="dns.srv",target="litware.test"}`] != 2 || got[`xgw_check_last_run_timestamp_seconds`] != 1700000000 {
			t.Errorf("check series: %v", got)
		}
	})
}

func TestHealthAndReadiness(t *testing.T) {
	// The keepalive on: the Edge answers OPTIONS (405 from sipgo counts).
	l, hs := adminLoop(t, "", gateway.WithSIPConfig(func(c *gwsip.Config) { c.KeepaliveInterval = 100 * time.Millisecond }))
	readyz := func() (int, map[string]string) {
		status, body := get(t, hs, "/readyz", "")
		var v map[string]string
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("/readyz body %q: %v", body, err)
		}
		return status, v
	}
	var status int
	var body map[string]string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if status, body = readyz(); status == 200 {
			break
		}
	}
	if status != 200 || body["status"] != "ready" {
		t.Fatalf("/readyz = %d %v, want 200 ready", status, body)
	}
	if status, b := get(t, hs, "/healthz", ""); status != 200 || !strings.Contains(b, "alive") {
		t.Errorf("/healthz = %d %s", status, b)
	}

	l.shutdown()
	status, body = readyz()
	if status != 503 || body["status"] != "not ready" || !strings.Contains(body["reason"], "not serving") {
		t.Errorf("/readyz after stop = %d %v, want 503 with the reason", status, body)
	}
	if status, _ := get(t, hs, "/healthz", ""); status != 200 {
		t.Errorf("/healthz after the gateway stopped = %d, want 200 (the process is alive)", status)
	}
}

func TestReadinessEdgeDown(t *testing.T) {
	_, hs := adminLoop(t, "") // keepalive off: no answer from the Edge yet
	status, body := get(t, hs, "/readyz", "")
	if status != 503 || !strings.Contains(body, "the Edge has not answered an OPTIONS keepalive yet") {
		t.Errorf("/readyz = %d %s, want 503 naming the Edge", status, body)
	}
}
