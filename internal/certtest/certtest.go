// Package certtest issues real X.509 certificates inside tests: a CA and
// leaves with chosen names, key type and size, validity and key usages, so
// every certificate pitfall (wrong CN, missing SAN, 1024-bit key, expired,
// no clientAuth, wrong chain) can be produced on demand.
package certtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// CA is a self-signed certificate authority.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer
}

// Leaf describes a certificate to issue. Zero values give a 2048-bit RSA
// server+client certificate valid from an hour ago for 90 days.
type Leaf struct {
	CN        string
	DNSNames  []string
	IPs       []net.IP
	RSABits   int  // default 2048 (ignored with ECDSA)
	ECDSA     bool // P-256
	Ed25519   bool
	NotBefore time.Time
	NotAfter  time.Time
	// ExtKeyUsage defaults to serverAuth+clientAuth, as mutual TLS with an
	// Edge needs; set it to narrow the certificate.
	ExtKeyUsage []x509.ExtKeyUsage
	// XMPPAddrs and SRVNames become otherName SANs (RFC 6120 §13.7.1.4,
	// RFC 4985), beside DNSNames and IPs in the same extension.
	XMPPAddrs []string
	SRVNames  []string // e.g. "_xmpp-server.example.org"
	// ExtraExtensions carries any other extension.
	ExtraExtensions []pkix.Extension
}

// Pair is an issued certificate and its key.
type Pair struct {
	Cert    *x509.Certificate
	CertPEM []byte // the leaf only
	KeyPEM  []byte
	TLS     tls.Certificate
}

var serial atomic.Int64

// rsaCache keeps generated RSA keys per size: generating 2048-bit keys for
// every case would dominate the suite's time on 2 cores. Keys are reused
// across certificates, which is harmless in tests.
var rsaCache = map[int]*rsa.PrivateKey{}

func rsaKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	if k, ok := loadCached(bits); ok {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatalf("certtest: rsa key: %v", err)
	}
	storeCached(bits, k)
	return k
}

// NewCA creates a self-signed CA named cn with a P-256 key.
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	return newCA(t, cn, nil, 365*24*time.Hour)
}

// NewIntermediate issues a CA certificate signed by ca, for chains of three.
func (ca *CA) NewIntermediate(t testing.TB, cn string) *CA {
	t.Helper()
	return newCA(t, cn, ca, 180*24*time.Hour)
}

// newCA issues a CA certificate signed by parent, or self-signed when
// parent is nil.
func newCA(t testing.TB, cn string, parent *CA, validity time.Duration) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"xgw test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	issuer, signer := tmpl, crypto.Signer(key)
	if parent != nil {
		issuer, signer = parent.Cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}
}

// Pool returns a pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue signs a leaf certificate.
func (ca *CA) Issue(t testing.TB, l Leaf) *Pair {
	t.Helper()
	var key crypto.Signer
	if l.Ed25519 {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	} else if l.ECDSA {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	} else {
		bits := l.RSABits
		if bits == 0 {
			bits = 2048
		}
		key = rsaKey(t, bits)
	}
	if l.NotBefore.IsZero() {
		l.NotBefore = time.Now().Add(-time.Hour)
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = time.Now().Add(90 * 24 * time.Hour)
	}
	if l.ExtKeyUsage == nil {
		l.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	if len(l.XMPPAddrs)+len(l.SRVNames) > 0 {
		// crypto/x509 cannot write otherName SANs: build the whole
		// extension, which then replaces the one from DNSNames and IPs.
		l.ExtraExtensions = append(l.ExtraExtensions, sanExtension(t, l))
	}
	tmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(serial.Add(1)),
		Subject:         pkix.Name{CommonName: l.CN},
		DNSNames:        l.DNSNames,
		IPAddresses:     l.IPs,
		NotBefore:       l.NotBefore,
		NotAfter:        l.NotAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:     l.ExtKeyUsage,
		ExtraExtensions: l.ExtraExtensions,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		t.Fatalf("certtest: issue %s: %v", l.CN, err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := &Pair{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	p.TLS, err = tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// WriteFiles writes cert.pem and key.pem (and ca.pem when ca is not nil) to
// dir and returns their paths.
func (p *Pair) WriteFiles(t testing.TB, dir string, ca *CA) (cert, key, caPath string) {
	t.Helper()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	write(t, cert, p.CertPEM)
	write(t, key, p.KeyPEM)
	if ca != nil {
		caPath = filepath.Join(dir, "ca.pem")
		write(t, caPath, ca.CertPEM)
	}
	return cert, key, caPath
}

func write(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// OIDs of the otherName SANs XMPP uses.
var (
	oidSAN      = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidXmppAddr = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5} // id-on-xmppAddr, UTF8String
	oidSRVName  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7} // id-on-dnsSRV, IA5String
)

// sanExtension encodes GeneralNames (RFC 5280 §4.2.1.6) holding the leaf's
// DNS names, IPs, XmppAddrs and SRVNames.
func sanExtension(t testing.TB, l Leaf) pkix.Extension {
	t.Helper()
	const (
		tagOtherName = 0
		tagDNS       = 2
		tagIP        = 7
	)
	var names []asn1.RawValue
	for _, d := range l.DNSNames {
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tagDNS, Bytes: []byte(d)})
	}
	for _, ip := range l.IPs {
		b := ip.To4()
		if b == nil {
			b = ip.To16()
		}
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tagIP, Bytes: b})
	}
	otherName := func(oid asn1.ObjectIdentifier, value, params string) {
		v, err := asn1.MarshalWithParams(value, params)
		if err != nil {
			t.Fatal(err)
		}
		// OtherName ::= SEQUENCE { type-id OID, value [0] EXPLICIT ANY },
		// itself implicitly tagged [0] inside GeneralName.
		id, err := asn1.Marshal(oid)
		if err != nil {
			t.Fatal(err)
		}
		wrapped, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: v})
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: tagOtherName, IsCompound: true,
			Bytes: append(id, wrapped...)})
	}
	for _, a := range l.XMPPAddrs {
		otherName(oidXmppAddr, a, "utf8")
	}
	for _, s := range l.SRVNames {
		otherName(oidSRVName, s, "ia5")
	}
	value, err := asn1.Marshal(names)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidSAN, Value: value}
}
