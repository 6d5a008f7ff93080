package checks

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/xgw-gateway/xgw/gateway/config"
)

func testConfig(mod func(c *config.Config)) *config.Config {
	c := &config.Config{
		SIP: config.SIP{Domains: []string{"litware.test"}, Listen: "127.0.0.1:5061",
			Edge: config.Edge{Host: "edge.litware.test", Port: 5061, Transport: "tls"}},
		XMPP: config.XMPP{Listen: "127.0.0.1:5269", InternalFQDN: "xgw-int.litware.test", ExternalFQDN: "xmpp.litware.test",
			PrivateIP: "127.0.0.1", Federation: []config.Partner{{Domain: "gmail.test", Auth: "dialback"}}},
	}
	if mod != nil {
		mod(c)
	}
	return c
}

type want struct {
	target string
	status Status
	found  string // substring
}

func assertResults(t *testing.T, got []Result, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("got %d results, want %d: %+v", len(got), len(wants), got)
	}
	for i, w := range wants {
		g := got[i]
		if g.Target != w.target || g.Status != w.status || !strings.Contains(g.Found, w.found) {
			t.Errorf("result %d = {%q %s %q}, want {%q %s ~%q}", i, g.Target, g.Status, g.Found, w.target, w.status, w.found)
		}
		if (g.Status == Fail || g.Status == Warn) && (g.Expected == "" || g.Fix == "") {
			t.Errorf("result %d (%s) lacks expected or fix: %+v", i, g.Status, g)
		}
	}
}

func TestFQDN(t *testing.T) {
	tests := []struct {
		name     string
		mod      func(*config.Config)
		hostname func() (string, error)
		want     []want
	}{
		{"healthy, short host name", nil, func() (string, error) { return "xgw01", nil }, []want{
			{"xgw-int.litware.test", Pass, "valid"}, {"xmpp.litware.test", Pass, "valid"}, {"dns-suffix", Pass, "no DNS suffix"}}},
		{"matching suffix", nil, func() (string, error) { return "xgw01.litware.test", nil }, []want{
			{"xgw-int.litware.test", Pass, ""}, {"xmpp.litware.test", Pass, ""}, {"dns-suffix", Pass, "has DNS suffix litware.test"}}},
		{"seed's srv_xmpp and a wrong suffix", func(c *config.Config) { c.XMPP.InternalFQDN = "srv_xmpp.litware.test" },
			func() (string, error) { return "xgw01.corp.example", nil }, []want{
				{"srv_xmpp.litware.test", Warn, "contains '_'"}, {"xmpp.litware.test", Pass, ""}, {"dns-suffix", Warn, "DNS suffix corp.example"}}},
		{"single label", func(c *config.Config) { c.XMPP.ExternalFQDN = "xmpp" }, func() (string, error) { return "h", nil }, []want{
			{"xgw-int.litware.test", Pass, ""}, {"xmpp", Fail, "single label"}, {"dns-suffix", Pass, ""}}},
		{"hostname error", nil, func() (string, error) { return "", errors.New("uts unavailable") }, []want{
			{"xgw-int.litware.test", Pass, ""}, {"xmpp.litware.test", Pass, ""}, {"dns-suffix", Warn, "uts unavailable"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := &Env{Config: testConfig(tt.mod), Hostname: tt.hostname}
			assertResults(t, Run(context.Background(), env, []Check{fqdnCheck}), tt.want)
		})
	}
}

func TestConfigConsistency(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*config.Config)
		want []want
	}{
		{"healthy", nil, []want{{"", Pass, "1 SIP domain(s), 1 federation partner(s)"}}},
		{"one FQDN for both", func(c *config.Config) { c.XMPP.InternalFQDN = "xmpp.litware.test" }, []want{{"xmpp.internal_fqdn", Warn, "both xmpp.litware.test"}}},
		{"listen not on private_ip", func(c *config.Config) { c.XMPP.PrivateIP = "127.0.0.2" }, []want{{"xmpp.listen", Warn, "private_ip is 127.0.0.2"}}},
		{"wildcard listen is fine", func(c *config.Config) { c.XMPP.Listen = "0.0.0.0:5269"; c.XMPP.PrivateIP = "127.0.0.2" }, []want{{"", Pass, ""}}},
		{"edge is ourselves", func(c *config.Config) { c.SIP.Edge.Host = "xgw-int.litware.test" }, []want{{"sip.edge.host", Fail, "gateway's own name"}}},
		{"lab transport", func(c *config.Config) { c.SIP.Edge.Transport = "tcp" }, []want{{"sip.edge.transport", Warn, "transport tcp"}}},
		{"no partners", func(c *config.Config) { c.XMPP.Federation = nil }, []want{{"xmpp.federation", Warn, "empty allow list"}}},
		{"open federation", func(c *config.Config) { c.XMPP.Federation = nil; c.XMPP.Open = true }, []want{{"", Pass, "0 federation partner(s)"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertResults(t, Run(context.Background(), &Env{Config: testConfig(tt.mod)}, []Check{configCheck}), tt.want)
		})
	}
}
