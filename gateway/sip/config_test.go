package sip_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xgw-gateway/xgw/gateway/config"
	gwsip "github.com/xgw-gateway/xgw/gateway/sip"
)

const configYAML = `sip:
  domains: [litware.test]
  listen: 127.0.0.1:5061
  edge: {host: edge.litware.test}
xmpp:
  listen: 127.0.0.1:5269
  internal_fqdn: xgw-int.litware.test
  external_fqdn: xmpp.litware.test
tls: {cert: cert.pem, key: key.pem, ca: ca.pem}
`

func TestFromConfig(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name    string
		ca      []byte // written as ca.pem
		wantErr string
	}{
		{"valid", p.ca.CertPEM, ""},
		{"CA file without a certificate", []byte("not PEM\n"), "tls.ca ca.pem: found no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p.gw.WriteFiles(t, dir, nil)
			if err := os.WriteFile(filepath.Join(dir, "ca.pem"), tt.ca, 0o600); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "xgw.yaml")
			if err := os.WriteFile(path, []byte(configYAML), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := config.LoadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := gwsip.FromConfig(c, newHandler(), nil, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Certificate == nil || cfg.RootCAs == nil {
				t.Fatal("certificate or CA not loaded")
			}
			if cfg.Edge.Host != "edge.litware.test" || cfg.Edge.Port != 5061 || cfg.Edge.Transport != "tls" {
				t.Errorf("edge %+v", cfg.Edge)
			}
			if cfg.Contact != "xgw-int.litware.test:5061" {
				t.Errorf("contact %q, want xgw-int.litware.test:5061", cfg.Contact)
			}
			ep, err := gwsip.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ep.Close()
		})
	}
}

// New names every missing piece at once.
func TestNewRejectsIncompleteConfig(t *testing.T) {
	_, err := gwsip.New(gwsip.Config{Edge: gwsip.Edge{Host: "edge.litware.test", Transport: "sctp"}})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`transport "sctp": expected tls, tcp or udp`, "Config.Handler is nil"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	_, err = gwsip.New(gwsip.Config{Handler: newHandler(), Edge: gwsip.Edge{Host: "edge.litware.test"}})
	for _, want := range []string{"tls.cert, tls.key", "tls.ca"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("TLS without certificates: error %v lacks %q", err, want)
		}
	}
}
