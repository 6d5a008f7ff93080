package checks

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/certtest"
	"github.com/xgw-gateway/xgw/internal/lab"
)

// TestEdge runs the probe against real Kamailio Edges on 127.77.2.x in the
// test namespace (lab.StartKamailio demands it).
func TestEdge(t *testing.T) {
	edgeCA := certtest.NewCA(t, "Litware Edge CA")
	strangerCA := certtest.NewCA(t, "Stranger CA")
	edgeCert := edgeCA.Issue(t, certtest.Leaf{CN: "edge.litware.test", DNSNames: []string{"edge.litware.test"}})
	ours := edgeCA.Issue(t, certtest.Leaf{CN: "xgw-int.litware.test", DNSNames: []string{"xgw-int.litware.test"}})
	stranger := strangerCA.Issue(t, certtest.Leaf{CN: "xgw-int.litware.test", DNSNames: []string{"xgw-int.litware.test"}})

	kCert, kKey, kCA := edgeCert.WriteFiles(t, t.TempDir(), edgeCA)
	ourCert, ourKey, ourCA := ours.WriteFiles(t, t.TempDir(), edgeCA)
	strCert, strKey, strCA := stranger.WriteFiles(t, t.TempDir(), strangerCA)
	noClient := edgeCA.Issue(t, certtest.Leaf{CN: "xgw-int.litware.test", DNSNames: []string{"xgw-int.litware.test"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	ncCert, ncKey, _ := noClient.WriteFiles(t, t.TempDir(), nil)
	weak := edgeCA.Issue(t, certtest.Leaf{CN: "xgw-int.litware.test", DNSNames: []string{"xgw-int.litware.test"}, RSABits: 1024})
	weakCert, weakKey, _ := weak.WriteFiles(t, t.TempDir(), nil)

	tlsEdge := lab.KamailioConfig{CertFile: kCert, KeyFile: kKey, CAFile: kCA, RequireClientCert: true,
		Aliases: []string{"edge.litware.test", "edge-misnamed.litware.test"}}
	healthy := tlsEdge
	healthy.Addr = "127.77.2.1:5061"
	lab.StartKamailio(t, healthy)
	misnamed := tlsEdge // its certificate says edge.litware.test
	misnamed.Addr = "127.77.2.2:5061"
	lab.StartKamailio(t, misnamed)
	lab.StartKamailio(t, lab.KamailioConfig{Addr: "127.77.2.4:5060", Transport: "tcp",
		Routes: []lab.KamailioRoute{{Methods: []string{"OPTIONS"}, Domains: []string{"edge-relay.litware.test"},
			NextHop: "sip:127.77.2.9:5060;transport=tcp"}}}) // a next hop that is down
	lab.StartKamailio(t, lab.KamailioConfig{Addr: "127.77.2.5:5060", Transport: "udp"})

	res := testResolver(t, `
edge           IN A 127.77.2.1
edge-misnamed  IN A 127.77.2.2
edge-down      IN A 127.77.2.3
edge-relay     IN A 127.77.2.4
edge-udp       IN A 127.77.2.5
`)
	cases := []struct {
		name           string
		host           string
		port           int
		transport      string
		cert, key, ca  string
		status         Status
		found, fixPart string
	}{
		{"healthy mutual TLS", "edge.litware.test", 5061, "tls", ourCert, ourKey, kCA, Pass, "OPTIONS answered 200 OK", ""},
		{"our certificate from an untrusted CA", "edge.litware.test", 5061, "tls", strCert, strKey, kCA, Fail,
			"the Edge refused our certificate", "add our CA to its trusted roots"},
		{"our certificate without clientAuth", "edge.litware.test", 5061, "tls", ncCert, ncKey, kCA, Fail,
			"unsupported certificate", "must allow Client Authentication (see tls.eku)"},
		{"our certificate with a 1024-bit key", "edge.litware.test", 5061, "tls", weakCert, weakKey, kCA, Fail,
			"bad certificate", "a key under 2048 bits"},
		{"Edge certificate for another name", "edge-misnamed.litware.test", 5061, "tls", ourCert, ourKey, ourCA, Fail,
			"not valid for edge-misnamed.litware.test", "set sip.edge.host to the name in the Edge's certificate"},
		{"Edge certificate from a CA not in tls.ca", "edge.litware.test", 5061, "tls", ourCert, ourKey, strCA, Fail,
			"not signed by tls.ca", "put the CA that issued the Edge's internal certificate"},
		{"nothing listening", "edge-down.litware.test", 5061, "tls", ourCert, ourKey, kCA, Fail,
			"refused", "check sip.edge.port"},
		{"OPTIONS answered with an error (tcp lab)", "edge-relay.litware.test", 5060, "tcp", "", "", "", Warn,
			"OPTIONS answered 4", "allow list"},
		{"udp lab", "edge-udp.litware.test", 5060, "udp", "", "", "", Pass, "UDP to 127.77.2.5:5060, OPTIONS answered 200 OK", ""},
		{"udp nothing listening", "edge-down.litware.test", 5060, "udp", "", "", "", Fail, "port unreachable", "listens on udp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{
				SIP:  config.SIP{Domains: []string{"litware.test"}, Edge: config.Edge{Host: tc.host, Port: tc.port, Transport: tc.transport}},
				XMPP: config.XMPP{InternalFQDN: "xgw-int.litware.test", ExternalFQDN: "xmpp.litware.test"},
				TLS:  config.TLS{Cert: tc.cert, Key: tc.key, CA: tc.ca},
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			got := Run(ctx, &Env{Config: cfg, Resolver: res}, []Check{edgeCheck})
			if len(got) != 1 {
				t.Fatalf("got %d results: %+v", len(got), got)
			}
			r := got[0]
			t.Logf("%s %s: %s | fix: %s", r.Status, r.Target, r.Found, r.Fix)
			if r.Status != tc.status || !strings.Contains(r.Found, tc.found) || !strings.Contains(r.Fix, tc.fixPart) {
				t.Fatalf("got %s\n  found: %s\n  fix:   %s\nwant %s with found %q and fix %q", r.Status, r.Found, r.Fix, tc.status, tc.found, tc.fixPart)
			}
			if want := tc.host + ":"; !strings.HasPrefix(r.Target, want) {
				t.Errorf("target %q, want it to name %s", r.Target, tc.host)
			}
		})
	}
}

func TestEdgeBadCAFile(t *testing.T) {
	ca := certtest.NewCA(t, "CA")
	p := ca.Issue(t, certtest.Leaf{CN: "xgw-int.litware.test"})
	dir := t.TempDir()
	cert, key, _ := p.WriteFiles(t, dir, nil)
	cfg := &config.Config{
		SIP: config.SIP{Edge: config.Edge{Host: "edge.litware.test", Port: 5061, Transport: "tls"}},
		TLS: config.TLS{Cert: cert, Key: key, CA: filepath.Join(dir, "key.pem")}, // a key, not a CA
	}
	got := Run(context.Background(), &Env{Config: cfg}, []Check{edgeCheck})
	if got[0].Status != Fail || !strings.Contains(got[0].Found, "holds no PEM certificate") {
		t.Fatalf("got %+v, want a fail naming the useless tls.ca", got[0])
	}
}
