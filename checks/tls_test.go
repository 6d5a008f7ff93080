package checks

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/certtest"
)

// idWant is one expected result of a run over several checks.
type idWant struct {
	id string
	want
}

func assertIDResults(t *testing.T, got []Result, wants []idWant) {
	t.Helper()
	plain := make([]want, len(wants))
	for i, w := range wants {
		plain[i] = w.want
		if i < len(got) && got[i].ID != w.id {
			t.Errorf("result %d has ID %s, want %s", i, got[i].ID, w.id)
		}
	}
	assertResults(t, got, plain)
}

var tlsChecks = []Check{tlsCertCheck, tlsNameCheck, tlsKeyCheck, tlsEKUCheck}

// tlsConfig points tls.* at cert.pem, key.pem and ca.pem relative to a
// config file in dir, as a real deployment does.
func tlsConfig(dir string, mod func(*config.Config)) *config.Config {
	return testConfig(func(c *config.Config) {
		c.File = filepath.Join(dir, "xgw.yaml")
		c.TLS = config.TLS{Cert: "cert.pem", Key: "key.pem", CA: "ca.pem"}
		if mod != nil {
			mod(c)
		}
	})
}

func writeFile(t *testing.T, dir, name string, data ...[]byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), slices.Concat(data...), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTLSChecks(t *testing.T) {
	now := time.Now()
	ca := certtest.NewCA(t, "Litware Private CA")
	other := certtest.NewCA(t, "Fabrikam CA")
	inter := ca.NewIntermediate(t, "Litware Issuing CA")
	const internal, domain, external = "xgw-int.litware.test", "litware.test", "xmpp.litware.test"
	good := certtest.Leaf{CN: internal, DNSNames: []string{internal, domain, external}}
	with := func(mod func(*certtest.Leaf)) certtest.Leaf {
		l := good
		mod(&l)
		return l
	}
	// issue writes a certificate from ca with its key and tls.ca = ca.
	issue := func(l certtest.Leaf) func(*testing.T, string) {
		return func(t *testing.T, dir string) { ca.Issue(t, l).WriteFiles(t, dir, ca) }
	}

	certOK := []idWant{{"tls.cert", want{"cert", Pass, "cert.pem: CN="}}, {"tls.cert", want{"key", Pass, "matches"}},
		{"tls.cert", want{"chain", Pass, "via Litware Private CA"}}, {"tls.cert", want{"validity", Pass, "days left"}}}
	nameOK := []idWant{{"tls.name", want{internal, Pass, "CN and DNS SAN " + internal}},
		{"tls.name", want{domain, Pass, "DNS-ID " + domain}}, {"tls.name", want{external, Pass, "in the SANs"}}}
	keyOK := []idWant{{"tls.key", want{"", Pass, "RSA 2048-bit"}}}
	ekuOK := []idWant{{"tls.eku", want{"", Pass, "serverAuth, clientAuth"}}}
	certWith := func(target string, w want) []idWant {
		out := slices.Clone(certOK)
		for i := range out {
			if out[i].target == target {
				out[i].want = w
			}
		}
		return out
	}
	skipped := func(bad string) []idWant {
		why := "prerequisite tls.cert is fail for " + bad
		return []idWant{{"tls.name", want{"", Skip, why}}, {"tls.key", want{"", Skip, why}}, {"tls.eku", want{"", Skip, why}}}
	}

	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		mod   func(*config.Config)
		want  []idWant
	}{
		{"healthy", issue(good), nil, slices.Concat(certOK, nameOK, keyOK, ekuOK)},
		{"ECDSA P-256", issue(with(func(l *certtest.Leaf) { l.ECDSA = true })), nil,
			slices.Concat(certOK, nameOK, []idWant{{"tls.key", want{"", Pass, "ECDSA P-256"}}}, ekuOK)},
		{"Ed25519", issue(with(func(l *certtest.Leaf) { l.Ed25519 = true })), nil,
			slices.Concat(certOK, nameOK, []idWant{{"tls.key", want{"", Warn, "Ed25519 key: strong, but the Windows TLS stack"}}}, ekuOK)},
		{"CN is not the internal FQDN", issue(with(func(l *certtest.Leaf) { l.CN = "xgw.litware.test" })), nil,
			slices.Concat(certOK, []idWant{{"tls.name", want{internal, Fail, "CN is xgw.litware.test, not " + internal}}}, nameOK[1:], keyOK, ekuOK)},
		{"no SANs at all", issue(with(func(l *certtest.Leaf) { l.DNSNames = nil })), nil,
			slices.Concat(certOK, []idWant{
				{"tls.name", want{internal, Fail, "no DNS SAN carries it (CN=" + internal + "; no DNS SANs)"}},
				{"tls.name", want{domain, Warn, domain + " is not in the certificate"}},
				{"tls.name", want{external, Pass, "not in the SANs; not needed"}}}, keyOK, ekuOK)},
		{"SIP domains as XmppAddr and SRV-ID, second domain missing",
			issue(with(func(l *certtest.Leaf) {
				l.DNSNames = []string{internal, "*.litware.test"}
				l.XMPPAddrs = []string{domain}
				l.SRVNames = []string{"_xmpp-server.college.litware.test"}
			})),
			func(c *config.Config) { c.SIP.Domains = []string{domain, "college.litware.test", "school.test"} },
			slices.Concat(certOK, []idWant{
				{"tls.name", want{internal, Pass, "XmppAddrs: litware.test"}},
				{"tls.name", want{domain, Pass, "XmppAddr " + domain}},
				{"tls.name", want{"college.litware.test", Pass, "DNS-ID *.litware.test"}},
				{"tls.name", want{"school.test", Warn, "SRV-IDs: _xmpp-server.college.litware.test"}},
				{"tls.name", want{external, Pass, "as *.litware.test"}}}, keyOK, ekuOK)},
		{"1024-bit RSA", issue(with(func(l *certtest.Leaf) { l.RSABits = 1024 })), nil,
			slices.Concat(certOK, nameOK, []idWant{{"tls.key", want{"", Fail, "RSA 1024-bit key"}}}, ekuOK)},
		{"no clientAuth", issue(with(func(l *certtest.Leaf) { l.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} })), nil,
			slices.Concat(certOK, nameOK, keyOK, []idWant{{"tls.eku", want{"", Fail, "serverAuth; clientAuth is missing"}}})},
		{"no serverAuth", issue(with(func(l *certtest.Leaf) { l.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} })), nil,
			slices.Concat(certOK, nameOK, keyOK, []idWant{{"tls.eku", want{"", Fail, "serverAuth is missing"}}})},
		{"no EKU extension", issue(with(func(l *certtest.Leaf) { l.ExtKeyUsage = []x509.ExtKeyUsage{} })), nil,
			slices.Concat(certOK, nameOK, keyOK, []idWant{{"tls.eku", want{"", Pass, "any usage"}}})},
		{"expires in 10 days", issue(with(func(l *certtest.Leaf) { l.NotAfter = now.Add(10*24*time.Hour + time.Hour) })), nil,
			slices.Concat(certWith("validity", want{"validity", Warn, "expires in 10 days"}), nameOK, keyOK, ekuOK)},
		{"expires in 3 days", issue(with(func(l *certtest.Leaf) { l.NotAfter = now.Add(3*24*time.Hour + time.Hour) })), nil,
			slices.Concat(certWith("validity", want{"validity", Fail, "expires in 3 days"}), skipped("validity"))},
		{"expired", issue(with(func(l *certtest.Leaf) {
			// Expired half an hour ago, when the test's CA (an hour old) was valid.
			l.NotBefore, l.NotAfter = now.Add(-100*24*time.Hour), now.Add(-30*time.Minute)
		})), nil,
			slices.Concat(certWith("validity", want{"validity", Fail, "expired"}), skipped("validity"))},
		{"not yet valid", issue(with(func(l *certtest.Leaf) { l.NotBefore = now.Add(24 * time.Hour) })), nil,
			slices.Concat(certWith("validity", want{"validity", Fail, "not yet valid"}), skipped("validity"))},
		{"issued by another CA", func(t *testing.T, dir string) {
			other.Issue(t, good).WriteFiles(t, dir, ca)
		}, nil, slices.Concat(certWith("chain", want{"chain", Fail, `issued by "Fabrikam CA", which is not in tls.ca`}), skipped("chain"))},
		{"intermediate appended to tls.cert", func(t *testing.T, dir string) {
			p := inter.Issue(t, good)
			p.WriteFiles(t, dir, ca)
			writeFile(t, dir, "cert.pem", p.CertPEM, inter.CertPEM)
		}, nil, slices.Concat(certWith("chain", want{"chain", Pass, "via Litware Issuing CA -> Litware Private CA"}), nameOK, keyOK, ekuOK)},
		{"intermediate missing", func(t *testing.T, dir string) {
			inter.Issue(t, good).WriteFiles(t, dir, ca)
		}, nil, slices.Concat(certWith("chain", want{"chain", Fail, `"Litware Issuing CA", which is not in tls.ca`}), skipped("chain"))},
		{"key of another certificate", func(t *testing.T, dir string) {
			mine := ca.Issue(t, with(func(l *certtest.Leaf) { l.ECDSA = true }))
			mine.WriteFiles(t, dir, ca)
			writeFile(t, dir, "key.pem", ca.Issue(t, with(func(l *certtest.Leaf) { l.ECDSA = true })).KeyPEM)
		}, nil, slices.Concat(certWith("key", want{"key", Fail, "holds a key (ECDSA P-256) that does not belong to the certificate"}), skipped("key"))},
		{"encrypted key", func(t *testing.T, dir string) {
			ca.Issue(t, good).WriteFiles(t, dir, ca)
			writeFile(t, dir, "key.pem", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0}}))
		}, nil, slices.Concat(certWith("key", want{"key", Fail, "encrypted with a passphrase"}), skipped("key"))},
		{"garbage PEM", func(t *testing.T, dir string) {
			ca.Issue(t, good).WriteFiles(t, dir, ca)
			writeFile(t, dir, "cert.pem", []byte("-----BEGIN CERTIFICATE-----\nthis is not base64!\n-----END CERTIFICATE-----\n"))
		}, nil, slices.Concat([]idWant{{"tls.cert", want{"cert", Fail, "cert.pem (tls.cert) is not PEM (a -----BEGIN block whose body is not valid base64"}}}, skipped("cert"))},
		{"DER instead of PEM", func(t *testing.T, dir string) {
			p := ca.Issue(t, good)
			p.WriteFiles(t, dir, ca)
			writeFile(t, dir, "cert.pem", p.Cert.Raw)
		}, nil, slices.Concat([]idWant{{"tls.cert", want{"cert", Fail, "binary DER or PKCS#12"}}}, skipped("cert"))},
		{"cert and key swapped", func(t *testing.T, dir string) {
			p := ca.Issue(t, good)
			p.WriteFiles(t, dir, ca)
			writeFile(t, dir, "cert.pem", p.KeyPEM)
			writeFile(t, dir, "key.pem", p.CertPEM)
		}, nil, slices.Concat([]idWant{{"tls.cert", want{"cert", Fail, "holds no certificate, only PEM blocks of type PRIVATE KEY"}}}, skipped("cert"))},
		{"missing certificate file", func(t *testing.T, dir string) {}, nil,
			slices.Concat([]idWant{{"tls.cert", want{"cert", Fail, "cert.pem (tls.cert) does not exist"}}}, skipped("cert"))},
		{"lab without tls.ca (transport tcp)", issue(good), func(c *config.Config) { c.TLS.CA, c.SIP.Edge.Transport = "", "tcp" },
			slices.Concat(certWith("chain", want{"chain", Pass, "not verified: tls.ca is not set"}), nameOK, keyOK, ekuOK)},
		{"missing CA file", func(t *testing.T, dir string) {
			ca.Issue(t, good).WriteFiles(t, dir, nil)
		}, nil, slices.Concat(certWith("chain", want{"chain", Fail, "ca.pem (tls.ca) does not exist"}), skipped("chain"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			env := &Env{Config: tlsConfig(dir, tt.mod), Now: func() time.Time { return now }}
			got := Run(context.Background(), env, tlsChecks)
			for _, r := range got {
				t.Logf("%s %s %s: %s | expected: %s | fix: %s", r.ID, r.Target, r.Status, r.Found, r.Expected, r.Fix)
			}
			assertIDResults(t, got, tt.want)
			// Every message about a file names its full path.
			for _, r := range got {
				if strings.Contains(r.Found, ".pem (tls.") && !strings.Contains(r.Found, dir) {
					t.Errorf("%s %s names no full path: %s", r.ID, r.Target, r.Found)
				}
			}
		})
	}
}

// Run alone (--only tls.key), a check that requires tls.cert reports the
// load failure itself instead of passing silently.
func TestTLSChecksAlone(t *testing.T) {
	dir := t.TempDir()
	env := &Env{Config: tlsConfig(dir, nil)}
	for _, c := range []Check{tlsNameCheck, tlsKeyCheck, tlsEKUCheck} {
		t.Run(c.ID, func(t *testing.T) {
			got := Run(context.Background(), env, []Check{c})
			assertIDResults(t, got, []idWant{{c.ID, want{"cert", Fail, filepath.Join(dir, "cert.pem") + " (tls.cert) does not exist"}}})
		})
	}
}

// The otherName parser must check the type OID: an SmtpUTF8Mailbox
// (RFC 8398) or a Microsoft UPN is a UTF8String otherName too, and is not
// an XmppAddr.
func TestParseXMPPIdentitiesIgnoresOtherOIDs(t *testing.T) {
	ca := certtest.NewCA(t, "CA")
	p := ca.Issue(t, certtest.Leaf{CN: "x.test", DNSNames: []string{"x.test"}, XMPPAddrs: []string{"a.test"}, SRVNames: []string{"_xmpp-server.b.test"}})
	ids, err := parseXMPPIdentities(p.Cert)
	if err != nil || !slices.Equal(ids.XMPPAddrs, []string{"a.test"}) || !slices.Equal(ids.SRVNames, []string{"_xmpp-server.b.test"}) {
		t.Fatalf("got %+v, %v", ids, err)
	}
	mailbox := replaceOID(t, p.Cert.Raw, oidXmppAddr, asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 9})
	ids, err = parseXMPPIdentities(mailbox)
	if err != nil || len(ids.XMPPAddrs) != 0 || len(ids.SRVNames) != 1 {
		t.Fatalf("with an SmtpUTF8Mailbox instead of the XmppAddr: got %+v, %v", ids, err)
	}
}

// replaceOID rewrites one OID in a parsed certificate's SAN extension (the
// signature no longer matters: only the extension is read).
func replaceOID(t *testing.T, der []byte, from, to asn1.ObjectIdentifier) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(oid asn1.ObjectIdentifier) []byte {
		b, err := asn1.Marshal(oid)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for i, ext := range c.Extensions {
		if ext.Id.Equal(oidSubjectAltName) {
			old, repl := enc(from), enc(to)
			// Same length keeps the enclosing DER lengths valid.
			if len(old) != len(repl) {
				t.Fatalf("OID encodings differ in length: %x vs %x", old, repl)
			}
			c.Extensions[i].Value = []byte(strings.Replace(string(ext.Value), string(old), string(repl), 1))
		}
	}
	return c
}
