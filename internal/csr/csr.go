// Package csr makes the gateway's private key and the PKCS#10 certificate
// signing request (RFC 2986) that `xgw cert request` hands to a CA.
//
// The request carries what the deployment needs, so the CA admin has nothing
// to type: CN = xmpp.internal_fqdn (the Edge compares it), DNS names for both
// FQDNs and every SIP domain (XMPP peers verify the SIP domain, RFC 6120
// §13.7.1.2), and an extensionRequest (PKCS#9, OID 1.2.840.113549.1.9.14)
// asking for serverAuth and clientAuth: the gateway is the TLS server for the
// Edge and for XMPP peers, and the TLS client when it dials them (mutual TLS,
// SASL EXTERNAL).
package csr

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/xgw-gateway/xgw/gateway/config"
)

// Key types and sizes.
const (
	KeyRSA   = "rsa"
	KeyECDSA = "ecdsa" // always P-256: every CA and every XMPP/SIP stack takes it

	DefaultRSABits = 3072
	// MinRSABits is the seed article's "at least 2048" and what AD CS
	// templates and public CAs require today.
	MinRSABits = 2048
	// MaxRSABits bounds key generation time (a 16384-bit key takes minutes).
	MaxRSABits = 8192
)

// Object identifiers written into the extensionRequest (RFC 5280 §4.2.1.3,
// §4.2.1.12).
var (
	oidKeyUsage    = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidServerAuth  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
	oidClientAuth  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
)

// Names is the identity the request asks for.
type Names struct {
	CommonName  string
	DNSNames    []string
	IPAddresses []net.IP // only when the config names the gateway by address
}

// NamesFor takes the identity from the config: CN = xmpp.internal_fqdn; SANs
// for the internal FQDN, the external FQDN and every SIP domain, each once.
func NamesFor(cfg *config.Config) Names {
	n := Names{CommonName: strings.TrimSuffix(cfg.XMPP.InternalFQDN, ".")}
	seen := map[string]bool{}
	for _, name := range append([]string{cfg.XMPP.InternalFQDN, cfg.XMPP.ExternalFQDN}, cfg.SIP.Domains...) {
		name = strings.TrimSuffix(name, ".")
		if name == "" || seen[strings.ToLower(name)] {
			continue
		}
		seen[strings.ToLower(name)] = true
		// An address in a dNSName is refused by verifiers; it belongs in
		// an iPAddress SAN.
		if ip := net.ParseIP(name); ip != nil {
			n.IPAddresses = append(n.IPAddresses, ip)
			continue
		}
		n.DNSNames = append(n.DNSNames, name)
	}
	return n
}

// KeySpec chooses the key.
type KeySpec struct {
	Type    string // KeyRSA or KeyECDSA
	RSABits int    // for KeyRSA; 0 means DefaultRSABits
}

// String describes the key as the output shows it: "RSA 3072", "ECDSA P-256".
func (k KeySpec) String() string {
	if k.Type == KeyECDSA {
		return "ECDSA P-256"
	}
	return fmt.Sprintf("RSA %d", k.bits())
}

func (k KeySpec) bits() int {
	if k.RSABits == 0 {
		return DefaultRSABits
	}
	return k.RSABits
}

// Validate says what is wrong with the spec, naming the value found and the
// accepted range.
func (k KeySpec) Validate() error {
	switch k.Type {
	case KeyRSA:
		return CheckRSABits(k.bits())
	case KeyECDSA:
		return nil
	}
	return fmt.Errorf("found key type %q, expected %s or %s", k.Type, KeyRSA, KeyECDSA)
}

// CheckRSABits refuses sizes below MinRSABits or above MaxRSABits.
func CheckRSABits(bits int) error {
	if bits < MinRSABits {
		return fmt.Errorf("found %d bits, expected at least %d (smaller RSA keys are refused by CAs and by the Edge); use the default %d", bits, MinRSABits, DefaultRSABits)
	}
	if bits > MaxRSABits {
		return fmt.Errorf("found %d bits, expected at most %d (larger keys take minutes to make and slow every handshake); use the default %d", bits, MaxRSABits, DefaultRSABits)
	}
	return nil
}

// Result is a new key and its request, both PEM.
type Result struct {
	KeyPEM []byte // PKCS#8 "PRIVATE KEY", unencrypted: xgw serve reads it unattended
	CSRPEM []byte // "CERTIFICATE REQUEST"
}

// Generate makes a key per spec and a request for names signed with it.
func Generate(names Names, spec KeySpec) (*Result, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if names.CommonName == "" {
		return nil, errors.New("csr: no common name (xmpp.internal_fqdn is empty)")
	}
	var (
		key crypto.Signer
		err error
	)
	// RSA can encrypt a TLS 1.2 RSA key exchange, so it asks for
	// keyEncipherment too; an EC key cannot, and RFC 5480 §3 forbids
	// that bit on it (some CAs refuse the request).
	usage := x509.KeyUsageDigitalSignature
	if spec.Type == KeyECDSA {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		key, err = rsa.GenerateKey(rand.Reader, spec.bits())
		usage |= x509.KeyUsageKeyEncipherment
	}
	if err != nil {
		return nil, fmt.Errorf("csr: generate %s key: %w", spec, err)
	}
	exts, err := extensions(usage)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: names.CommonName},
		DNSNames:    names.DNSNames,
		IPAddresses: names.IPAddresses,
		// Go adds ExtraExtensions to the extensionRequest attribute,
		// next to the subjectAltName it builds from DNSNames.
		ExtraExtensions: exts,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("csr: sign the request: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("csr: encode the key: %w", err)
	}
	return &Result{
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		CSRPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
	}, nil
}

// extensions encodes the key usage (critical, RFC 5280 §4.2.1.3) and the
// extended key usage serverAuth + clientAuth.
func extensions(usage x509.KeyUsage) ([]pkix.Extension, error) {
	ku, err := asn1.Marshal(keyUsageBits(usage))
	if err != nil {
		return nil, fmt.Errorf("csr: encode key usage: %w", err)
	}
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{oidServerAuth, oidClientAuth})
	if err != nil {
		return nil, fmt.Errorf("csr: encode extended key usage: %w", err)
	}
	return []pkix.Extension{
		{Id: oidKeyUsage, Critical: true, Value: ku},
		{Id: oidExtKeyUsage, Value: eku},
	}, nil
}

// keyUsageBits turns x509.KeyUsage (bit 0 = digitalSignature) into the DER
// named bit list: bit 0 is the most significant bit of the first byte, and
// trailing zero bits are dropped (X.690 §11.2.2).
func keyUsageBits(u x509.KeyUsage) asn1.BitString {
	var b asn1.BitString
	for i := 0; i < 9; i++ {
		if u&(1<<i) == 0 {
			continue
		}
		for len(b.Bytes) <= i/8 {
			b.Bytes = append(b.Bytes, 0)
		}
		b.Bytes[i/8] |= 0x80 >> (i % 8)
		b.BitLength = i + 1
	}
	return b
}

// ErrKeyExists means WriteKey found a key at the path and was not told to
// replace it.
var ErrKeyExists = errors.New("a private key is already there")

// WriteKey writes a private key readable by its owner only (0600). It refuses
// to replace an existing file unless force is set: that key may belong to the
// certificate in service. With force the old file is replaced in one rename,
// so a crash leaves the old key or the new one, never half of one.
func WriteKey(path string, keyPEM []byte, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w; fix: pass --force to replace it (its certificate stops working), or choose another --out-dir", path, ErrKeyExists)
		}
		if err != nil {
			return err
		}
		return writeClose(f, keyPEM, path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".xgw-key-*")
	if err != nil {
		return err
	}
	// CreateTemp makes the file 0600, whatever the old key's mode was.
	if err := writeClose(f, keyPEM, f.Name()); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// writeClose writes data, syncs and closes f; on failure it removes name so
// no truncated key is left behind.
func writeClose(f *os.File, data []byte, name string) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
	}
	return err
}
