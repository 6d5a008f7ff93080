package csr

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xgw-gateway/xgw/gateway/config"
)

func TestNamesFor(t *testing.T) {
	tests := []struct {
		name     string
		internal string
		external string
		domains  []string
		wantCN   string
		wantDNS  []string
		wantIP   []string
	}{
		{"two SIP domains", "xgw-int.litware.test", "xmpp.litware.test", []string{"litware.test", "college.litware.test"},
			"xgw-int.litware.test", []string{"xgw-int.litware.test", "xmpp.litware.test", "litware.test", "college.litware.test"}, nil},
		{"duplicates once, any case, trailing dot", "gw.example.org.", "GW.example.org", []string{"example.org", "Example.Org."},
			"gw.example.org", []string{"gw.example.org", "example.org"}, nil},
		{"internal name is an address", "192.0.2.20", "xmpp.example.org", []string{"example.org"},
			"192.0.2.20", []string{"xmpp.example.org", "example.org"}, []string{"192.0.2.20"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{}
			cfg.XMPP.InternalFQDN, cfg.XMPP.ExternalFQDN, cfg.SIP.Domains = tt.internal, tt.external, tt.domains
			n := NamesFor(cfg)
			if n.CommonName != tt.wantCN {
				t.Errorf("CN = %q, want %q", n.CommonName, tt.wantCN)
			}
			if !slices.Equal(n.DNSNames, tt.wantDNS) {
				t.Errorf("DNS names = %q, want %q", n.DNSNames, tt.wantDNS)
			}
			var ips []string
			for _, ip := range n.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.wantIP) {
				t.Errorf("IP addresses = %q, want %q", ips, tt.wantIP)
			}
		})
	}
}

func TestKeySpecValidate(t *testing.T) {
	tests := []struct {
		spec    KeySpec
		wantErr string // "" = accepted
	}{
		{KeySpec{Type: KeyRSA}, ""},
		{KeySpec{Type: KeyRSA, RSABits: 2048}, ""},
		{KeySpec{Type: KeyRSA, RSABits: 8192}, ""},
		{KeySpec{Type: KeyRSA, RSABits: 2047}, "found 2047 bits, expected at least 2048"},
		{KeySpec{Type: KeyRSA, RSABits: 1024}, "found 1024 bits, expected at least 2048"},
		{KeySpec{Type: KeyRSA, RSABits: -1}, "found -1 bits, expected at least 2048"},
		{KeySpec{Type: KeyRSA, RSABits: 16384}, "found 16384 bits, expected at most 8192"},
		{KeySpec{Type: KeyECDSA}, ""},
		{KeySpec{Type: "dsa"}, `found key type "dsa", expected rsa or ecdsa`},
		{KeySpec{}, `found key type "", expected rsa or ecdsa`},
	}
	for _, tt := range tests {
		t.Run(tt.spec.Type+"/"+strings.ReplaceAll(tt.spec.String(), " ", "_"), func(t *testing.T) {
			err := tt.spec.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestKeyUsageBits(t *testing.T) {
	tests := []struct {
		name  string
		usage x509.KeyUsage
		want  asn1.BitString
	}{
		{"digitalSignature", x509.KeyUsageDigitalSignature, asn1.BitString{Bytes: []byte{0x80}, BitLength: 1}},
		{"digitalSignature keyEncipherment", x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, asn1.BitString{Bytes: []byte{0xa0}, BitLength: 3}},
		{"keyAgreement", x509.KeyUsageKeyAgreement, asn1.BitString{Bytes: []byte{0x08}, BitLength: 5}},
		{"decipherOnly needs a second byte", x509.KeyUsageDecipherOnly, asn1.BitString{Bytes: []byte{0x00, 0x80}, BitLength: 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := keyUsageBits(tt.usage)
			if !bytes.Equal(got.Bytes, tt.want.Bytes) || got.BitLength != tt.want.BitLength {
				t.Errorf("got %x/%d, want %x/%d", got.Bytes, got.BitLength, tt.want.Bytes, tt.want.BitLength)
			}
			// Decoded bit by bit, the DER must give back the same usage.
			der, err := asn1.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if u := decodeKeyUsage(t, der); u != tt.usage {
				t.Errorf("round trip = %b, want %b", u, tt.usage)
			}
		})
	}
}

var litware = Names{
	CommonName: "xgw-int.litware.test",
	DNSNames:   []string{"xgw-int.litware.test", "xmpp.litware.test", "litware.test", "college.litware.test"},
}

func TestGenerate(t *testing.T) {
	tests := []struct {
		name      string
		spec      KeySpec
		wantKey   string
		wantUsage x509.KeyUsage
	}{
		// 2048 rather than the 3072 default keeps the test fast; cmd's tests
		// make one default key.
		{"rsa 2048", KeySpec{Type: KeyRSA, RSABits: 2048}, "RSA 2048", x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment},
		{"ecdsa", KeySpec{Type: KeyECDSA}, "ECDSA P-256", x509.KeyUsageDigitalSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Generate(litware, tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			req := parseCSR(t, res.CSRPEM)
			if err := req.CheckSignature(); err != nil {
				t.Errorf("signature: %v", err)
			}
			if req.Subject.CommonName != litware.CommonName || len(req.Subject.Names) != 1 {
				t.Errorf("subject = %v, want CN=%s only", req.Subject, litware.CommonName)
			}
			if !slices.Equal(req.DNSNames, litware.DNSNames) {
				t.Errorf("DNS names = %q, want %q", req.DNSNames, litware.DNSNames)
			}
			if got := describeKey(req.PublicKey); got != tt.wantKey {
				t.Errorf("public key = %s, want %s", got, tt.wantKey)
			}
			ext := requestedExtensions(t, req.RawTBSCertificateRequest)
			if eku := ext[oidExtKeyUsage.String()]; !eku.equalOIDs(t, oidServerAuth, oidClientAuth) {
				t.Errorf("extended key usage = %x, want serverAuth, clientAuth", eku.Value)
			}
			ku, ok := ext[oidKeyUsage.String()]
			if !ok || !ku.Critical {
				t.Fatalf("key usage = %+v, want a critical extension", ku)
			}
			if got := decodeKeyUsage(t, ku.Value); got != tt.wantUsage {
				t.Errorf("key usage = %b, want %b", got, tt.wantUsage)
			}
			if _, ok := ext["2.5.29.17"]; !ok {
				t.Error("no subjectAltName in the extensionRequest")
			}

			block, _ := pem.Decode(res.KeyPEM)
			if block == nil || block.Type != "PRIVATE KEY" {
				t.Fatalf("key PEM = %.40q, want a PRIVATE KEY block", res.KeyPEM)
			}
			key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			pub := key.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool })
			if !pub.Equal(req.PublicKey) {
				t.Error("the key file does not hold the request's key")
			}
		})
	}
}

func TestGenerateRefuses(t *testing.T) {
	tests := []struct {
		name    string
		names   Names
		spec    KeySpec
		wantErr string
	}{
		{"small RSA", litware, KeySpec{Type: KeyRSA, RSABits: 1024}, "expected at least 2048"},
		{"no common name", Names{}, KeySpec{Type: KeyECDSA}, "xmpp.internal_fqdn is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Generate(tt.names, tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want %q", err, tt.wantErr)
			}
			if res != nil {
				t.Error("a result came back with the error")
			}
		})
	}
}

func TestWriteKey(t *testing.T) {
	t.Run("new file is 0600", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "key.pem")
		if err := WriteKey(path, []byte("new"), false); err != nil {
			t.Fatal(err)
		}
		assertFile(t, path, "new", 0o600)
	})
	t.Run("existing key kept without force", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "key.pem")
		if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := WriteKey(path, []byte("new"), false)
		if !errors.Is(err, ErrKeyExists) || !strings.Contains(err.Error(), "--force") {
			t.Errorf("error = %v, want ErrKeyExists naming --force", err)
		}
		assertFile(t, path, "old", 0o600)
	})
	t.Run("force replaces a 0644 key with a 0600 one", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "key.pem")
		if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := WriteKey(path, []byte("new"), true); err != nil {
			t.Fatal(err)
		}
		assertFile(t, path, "new", 0o600)
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("folder holds %d files, want only the key (no temporary left)", len(entries))
		}
	})
	t.Run("missing folder", func(t *testing.T) {
		err := WriteKey(filepath.Join(t.TempDir(), "nope", "key.pem"), []byte("new"), false)
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("error = %v, want not-exist", err)
		}
	})
}

// assertFile checks content and, where POSIX modes exist, the mode.
func assertFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != content {
		t.Errorf("%s holds %q, want %q", path, got, content)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != mode {
		t.Errorf("%s mode = %o, want %o", path, fi.Mode().Perm(), mode)
	}
}

func parseCSR(t *testing.T, data []byte) *x509.CertificateRequest {
	t.Helper()
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE REQUEST" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("CSR PEM = %.60q, want one CERTIFICATE REQUEST block", data)
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func describeKey(k any) string {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return "RSA " + strconv.Itoa(k.N.BitLen())
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return "ECDSA P-256"
		}
		return "ECDSA " + k.Curve.Params().Name
	}
	return "unknown"
}

// requestedExtension is one extension of the PKCS#9 extensionRequest.
type requestedExtension pkix.Extension

// requestedExtensions decodes the extensionRequest attribute straight from
// the request's DER (RFC 2986 §4.1), without crypto/x509's own parsing of it,
// keyed by OID.
func requestedExtensions(t *testing.T, tbs []byte) map[string]requestedExtension {
	t.Helper()
	var info struct {
		Version    int
		Subject    asn1.RawValue
		PublicKey  asn1.RawValue
		Attributes []struct {
			Type   asn1.ObjectIdentifier
			Values []asn1.RawValue `asn1:"set"`
		} `asn1:"tag:0"`
	}
	if rest, err := asn1.Unmarshal(tbs, &info); err != nil || len(rest) != 0 {
		t.Fatalf("CertificationRequestInfo: %v (%d bytes left)", err, len(rest))
	}
	oidExtensionRequest := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 14}
	out := map[string]requestedExtension{}
	for _, a := range info.Attributes {
		if !a.Type.Equal(oidExtensionRequest) {
			continue
		}
		if len(a.Values) != 1 {
			t.Fatalf("extensionRequest has %d values, want 1", len(a.Values))
		}
		var exts []pkix.Extension
		if _, err := asn1.Unmarshal(a.Values[0].FullBytes, &exts); err != nil {
			t.Fatalf("extensionRequest: %v", err)
		}
		for _, e := range exts {
			out[e.Id.String()] = requestedExtension(e)
		}
	}
	if len(out) == 0 {
		t.Fatal("no extensionRequest attribute in the request")
	}
	return out
}

func (e requestedExtension) equalOIDs(t *testing.T, want ...asn1.ObjectIdentifier) bool {
	t.Helper()
	var got []asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(e.Value, &got); err != nil {
		t.Fatalf("extended key usage: %v", err)
	}
	return slices.EqualFunc(got, want, asn1.ObjectIdentifier.Equal)
}

// decodeKeyUsage reads a DER KeyUsage BIT STRING (bit 0 = digitalSignature).
func decodeKeyUsage(t *testing.T, der []byte) x509.KeyUsage {
	t.Helper()
	var bits asn1.BitString
	if _, err := asn1.Unmarshal(der, &bits); err != nil {
		t.Fatalf("key usage: %v", err)
	}
	var u x509.KeyUsage
	for i := 0; i < 9; i++ {
		if bits.At(i) != 0 {
			u |= 1 << i
		}
	}
	return u
}
