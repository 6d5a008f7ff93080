package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xgw-gateway/xgw/gateway/config"
)

// tls.domains: a certificate per SIP domain, chosen by SNI on the XMPP side.
func TestTLSDomains(t *testing.T) {
	const base = `sip:
  domains: [litware.test, college.litware.test]
  listen: 192.0.2.20:5061
  edge: {host: edge.litware.test}
xmpp:
  listen: 192.0.2.20:5269
  internal_fqdn: xgw-int.litware.test
  external_fqdn: xmpp.litware.test
tls:
  cert: cert.pem
  key: key.pem
  ca: ca.pem
`
	tests := []struct {
		name    string
		domains string
		want    []string // substrings of the errors, in order; none: valid
	}{
		{"absent (the default)", "", nil},
		{"one domain", "  domains:\n    - {domain: college.litware.test, cert: college.pem, key: college.key}\n", nil},
		{"domain not served", "  domains:\n    - {domain: other.test, cert: o.pem, key: o.key}\n",
			[]string{`:14: tls.domains[0].domain: found "other.test", expected one of sip.domains litware.test, college.litware.test`}},
		{"twice and incomplete", "  domains:\n    - {domain: litware.test, cert: a.pem, key: a.key}\n    - {domain: LITWARE.test}\n",
			[]string{`:15: tls.domains[1].domain: found "LITWARE.test" a second time, expected one certificate per domain`,
				`tls.domains[1].cert: found nothing (the key is missing), expected the PEM certificate for LITWARE.test`,
				`tls.domains[1].key: found nothing (the key is missing)`}},
		{"no domain", "  domains:\n    - {cert: a.pem, key: a.key}\n",
			[]string{`tls.domains[0].domain: found nothing (the key is missing), expected one of sip.domains`}},
		{"misspelt key", "  domains:\n    - {domain: litware.test, certificate: a.pem, key: a.key}\n",
			[]string{`tls.domains[0].certificate: found unknown key "certificate", expected one of domain, cert, key`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "xgw.yaml")
			if err := os.WriteFile(p, []byte(base+tt.domains), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := config.LoadFile(p)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if tt.domains != "" && (len(c.TLS.Domains) != 1 || c.TLS.Domains[0] != (config.DomainCert{Domain: "college.litware.test", Cert: "college.pem", Key: "college.key"})) {
					t.Errorf("tls.domains = %+v", c.TLS.Domains)
				}
				return
			}
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v, want config.Errors", err)
			}
			if len(errs) != len(tt.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i := 0; i < min(len(errs), len(tt.want)); i++ {
				if !strings.Contains(errs[i].Error(), tt.want[i]) || errs[i].Fix == "" {
					t.Errorf("error %d = %q\nwant it to contain %q and a fix", i, errs[i].Error(), tt.want[i])
				}
			}
		})
	}
}
