package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
)

func TestLoadValid(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T, c *config.Config)
	}{
		{"full.yaml", func(t *testing.T, c *config.Config) {
			if got := strings.Join(c.SIP.Domains, ","); got != "litware.test,college.litware.test" {
				t.Errorf("domains = %s", got)
			}
			if c.XMPP.Federation[0] != (config.Partner{Domain: "gmail.test", Auth: "dialback"}) {
				t.Errorf("federation = %+v", c.XMPP.Federation)
			}
			if c.Line("xmpp.public_ip") != 18 {
				t.Errorf("line of xmpp.public_ip = %d, want 18", c.Line("xmpp.public_ip"))
			}
		}},
		{"minimal.yaml", func(t *testing.T, c *config.Config) {
			if c.SIP.Edge.Port != 5061 || c.SIP.Edge.Transport != "tls" {
				t.Errorf("edge defaults = %+v", c.SIP.Edge)
			}
			if time.Duration(c.Checks.Timeout) != 5*time.Second || c.Checks.HostsFile != "/etc/hosts" {
				t.Errorf("checks defaults = %+v", c.Checks)
			}
			if c.XMPP.MaxStanzaSize != 256<<10 {
				t.Errorf("max stanza size = %d", c.XMPP.MaxStanzaSize)
			}
			if got, want := c.Path("cert.pem"), filepath.Join("..", "..", "testdata", "config", "cert.pem"); got != want {
				t.Errorf("Path = %s, want %s", got, want)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := config.LoadFile(filepath.Join("..", "..", "testdata", "config", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// Each bad file must name every problem: line, key, value found, expectation.
func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		file string
		want []string // one substring per expected error, in order
	}{
		{"bad-unknown-key.yaml", []string{
			`bad-unknown-key.yaml:4: sip.edge.transprt: found unknown key "transprt", expected one of host, port, transport`,
		}},
		{"bad-types.yaml", []string{
			`bad-types.yaml:2: sip.domains: found "litware.test", expected a list`,
			`bad-types.yaml:4: sip.edge.port: found "five", expected an integer`,
			`bad-types.yaml:9: xmpp.open: found "maybe", expected true or false`,
			`bad-types.yaml:11: checks.timeout: found "5", expected a positive duration`,
		}},
		{"bad-values.yaml", []string{
			`:2: sip.domains[1]: found "bad domain" (character ' ' is not allowed)`,
			`:2: sip.domains[2]: found "litware.test" a second time, expected each domain once`,
			`:3: sip.listen: found "127.0.0.1", expected an address HOST:PORT`,
			`:4: sip.edge.port: found 70000, expected a port from 1 to 65535`,
			`:4: sip.edge.transport: found "sctp", expected tls, tcp or udp`,
			`:9: xmpp.public_ip: found "203.0.113.300", expected an IPv4 or IPv6 address`,
			`:12: xmpp.federation[0].auth: found "sasl", expected dialback, tls or tls+dialback`,
			`:13: xmpp.federation[1].domain: found "litware.test", expected a remote XMPP domain, not one of sip.domains`,
			`tls.key: found nothing (the key is missing)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := config.LoadFile(filepath.Join("..", "..", "testdata", "config", tt.file))
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v, want config.Errors", err)
			}
			if len(errs) != len(tt.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i := 0; i < min(len(errs), len(tt.want)); i++ {
				if !strings.Contains(errs[i].Error(), tt.want[i]) {
					t.Errorf("error %d = %q\nwant it to contain %q", i, errs[i].Error(), tt.want[i])
				}
				if errs[i].Fix == "" {
					t.Errorf("error %d has no fix: %v", i, errs[i])
				}
			}
		})
	}
}

func TestLoadUnreadable(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"empty", "", "found an empty file"},
		{"not yaml", "sip: [unclosed\n", "invalid YAML"},
		{"scalar root", "hello\n", "found \"hello\", expected a mapping of keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.yaml")
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := config.LoadFile(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := config.LoadFile(filepath.Join(t.TempDir(), "absent.yaml")); err == nil || !strings.Contains(err.Error(), "XGW_CONFIG") {
		t.Errorf("missing file: err = %v, want a hint about --config/XGW_CONFIG", err)
	}
}

func TestZoneRecords(t *testing.T) {
	c, err := config.LoadFile(filepath.Join("..", "..", "testdata", "config", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got := config.ZoneRecords(c)
	for _, want := range []string{
		"_xmpp-server._tcp.litware.test.\t3600\tIN\tSRV\t0 5 5269 xmpp.litware.test.\n",
		"_xmpp-server._tcp.college.litware.test.\t3600\tIN\tSRV\t0 5 5269 xmpp.litware.test.\n",
		"xmpp.litware.test.\t3600\tIN\tA\t203.0.113.32\n",
		"xgw-int.litware.test.\t3600\tIN\tA\t192.0.2.20\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ZoneRecords lacks %q:\n%s", want, got)
		}
	}
}

// Values checked with the example each key usually has.
func TestValueRanges(t *testing.T) {
	base := func(extra string) string {
		return `sip: {domains: [litware.test], listen: "127.0.0.1:5061", edge: {host: edge.litware.test}}
xmpp: {listen: "127.0.0.1:5269", internal_fqdn: xgw-int.litware.test, external_fqdn: xmpp.litware.test` + extra + `}
tls: {cert: c.pem, key: k.pem, ca: ca.pem}
`
	}
	tests := []struct {
		name, yaml, want string // want "" = valid
	}{
		{"stanza size default range top", base(", max_stanza_size: 262144"), ""},
		{"stanza size over 256 KiB", base(", max_stanza_size: 99999999999"), "xmpp.max_stanza_size: found 99999999999, expected from 10000 (RFC 6120 §13.12) to 262144 bytes"},
		{"stanza size under RFC minimum", base(", max_stanza_size: 4096"), "expected from 10000"},
		{"xmpp.listen without port suggests 5269", strings.Replace(base(""), `"127.0.0.1:5269"`, `"127.0.0.1"`, 1), "fix: add the port, e.g. 127.0.0.1:5269"},
		{"dns server as a bare IP", base("") + "checks: {dns_server: 10.0.0.53}\n", ""},
		{"dns server without port suggests 53", base("") + "checks: {dns_server: ns.example}\n", "fix: add the port, e.g. ns.example:53"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load("x.yaml", strings.NewReader(tt.yaml))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
