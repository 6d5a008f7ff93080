package gateway

import (
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/certtest"
)

// tls.domains: the SIP domain's own certificate by SNI, else tls.cert when
// it names the domain (or no name was asked).
func TestXMPPTLS(t *testing.T) {
	ca := certtest.NewCA(t, "Test CA")
	main := ca.Issue(t, certtest.Leaf{CN: "xgw-int.litware.test", DNSNames: []string{"xgw-int.litware.test", "litware.test"}, ECDSA: true})
	dir := t.TempDir()
	ca.Issue(t, certtest.Leaf{CN: "college.litware.test", DNSNames: []string{"college.litware.test"}, ECDSA: true}).WriteFiles(t, dir, nil)
	cfg := &config.Config{File: filepath.Join(dir, "xgw.yaml"),
		TLS: config.TLS{Domains: []config.DomainCert{{Domain: "college.litware.test", Cert: "cert.pem", Key: "key.pem"}}}}

	c, err := (&Server{}).xmppTLS(cfg, &main.TLS)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		sni    string
		wantCN string // "": no certificate for that name
	}{
		{"college.litware.test", "college.litware.test"},
		{"COLLEGE.litware.test", "college.litware.test"},
		{"litware.test", "xgw-int.litware.test"},
		{"", "xgw-int.litware.test"},
		{"fabrikam.test", ""},
	}
	for _, tt := range tests {
		t.Run("SNI "+tt.sni, func(t *testing.T) {
			got, err := c.GetCertificate(&tls.ClientHelloInfo{ServerName: tt.sni})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.wantCN == "" && got != nil:
				t.Errorf("got %s, want none", got.Leaf.Subject.CommonName)
			case tt.wantCN != "" && (got == nil || got.Leaf.Subject.CommonName != tt.wantCN):
				t.Errorf("got %v, want %s", got, tt.wantCN)
			}
		})
	}

	t.Run("unreadable file names the domain", func(t *testing.T) {
		bad := *cfg
		bad.TLS.Domains = []config.DomainCert{{Domain: "college.litware.test", Cert: "absent.pem", Key: "key.pem"}}
		if _, err := (&Server{}).xmppTLS(&bad, nil); err == nil || !strings.Contains(err.Error(), "tls.domains college.litware.test") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("no certificates at all", func(t *testing.T) {
		if c, err := (&Server{}).xmppTLS(&config.Config{}, nil); c != nil || err != nil {
			t.Errorf("got %v, %v; want nil, nil (no STARTTLS)", c, err)
		}
	})
}
