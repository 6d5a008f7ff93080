package certtest

import (
	"crypto/x509"
	"net"
	"slices"
	"testing"
)

func TestIssue(t *testing.T) {
	root := NewCA(t, "Root")
	inter := root.NewIntermediate(t, "Issuing CA")
	p := inter.Issue(t, Leaf{
		CN:        "xgw-int.example.test",
		DNSNames:  []string{"xgw-int.example.test", "example.test"},
		IPs:       []net.IP{net.ParseIP("127.0.0.1")},
		XMPPAddrs: []string{"example.test"},
		SRVNames:  []string{"_xmpp-server.example.test"},
	})
	// The hand-built SAN extension must still give crypto/x509 its DNS names and IPs.
	if !slices.Equal(p.Cert.DNSNames, []string{"xgw-int.example.test", "example.test"}) || len(p.Cert.IPAddresses) != 1 {
		t.Errorf("DNSNames %v IPs %v", p.Cert.DNSNames, p.Cert.IPAddresses)
	}
	inters := x509.NewCertPool()
	inters.AddCert(inter.Cert)
	if _, err := p.Cert.Verify(x509.VerifyOptions{Roots: root.Pool(), Intermediates: inters, DNSName: "example.test"}); err != nil {
		t.Errorf("chain leaf -> intermediate -> root: %v", err)
	}
	if _, err := p.Cert.Verify(x509.VerifyOptions{Roots: root.Pool()}); err == nil {
		t.Error("verified without the intermediate")
	}
	dir := t.TempDir()
	_, _, ca := p.WriteFiles(t, dir, root)
	if ca == "" {
		t.Error("WriteFiles wrote no CA file")
	}
}
