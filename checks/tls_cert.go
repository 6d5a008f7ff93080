package checks

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"
)

// tlsCertCheck covers the seed article's step 5: the gateway's certificate
// and key load, belong together, chain to a CA the Edge trusts and are in
// their validity period. The Edge refuses the MTLS connection otherwise.
var tlsCertCheck = Check{
	ID:    "tls.cert",
	Title: "Certificate and key load, match, chain to tls.ca and are valid",
	Run:   runTLSCert,
}

// Expiry thresholds (prosody's check.lua grades the same way).
const (
	certExpiryWarn = 30 * 24 * time.Hour
	certExpiryFail = 7 * 24 * time.Hour
)

// Limits on what a PEM file may hold, so a wrong file (a log, a disk image)
// is refused quickly instead of parsed at length.
const (
	maxPEMFile   = 1 << 20
	maxCertChain = 16
)

func runTLSCert(_ context.Context, env *Env) []Result {
	const id = "tls.cert"
	chain, bad := loadCertChain(env, id, "cert")
	if bad != nil {
		return []Result{*bad}
	}
	leaf := chain[0]
	found := fmt.Sprintf("%s: %s, issued by %s", env.Config.Path(env.Config.TLS.Cert), certSummary(leaf), leaf.Issuer)
	if n := len(chain) - 1; n > 0 {
		found += fmt.Sprintf(", with %d intermediate(s)", n)
	}
	return []Result{
		pass(id, "cert", found),
		certKeyResult(env, id, leaf),
		certChainResult(env, id, chain),
		certValidityResult(env, id, leaf),
	}
}

func certSummary(c *x509.Certificate) string {
	return fmt.Sprintf("CN=%s, serial %X", c.Subject.CommonName, c.SerialNumber)
}

// readTLSFile reads the file named by config key (tls.cert, tls.key, tls.ca).
// The failure names the key and the resolved path.
func readTLSFile(env *Env, id, target, key, value string) ([]byte, *Result) {
	if value == "" {
		r := fail(id, target, key+" is not set", "the path of a PEM file", "set "+key+" in "+configName(env))
		return nil, &r
	}
	path := env.Config.Path(value)
	data, err := env.ReadFile(path)
	var r Result
	switch {
	case err == nil && len(data) > maxPEMFile:
		r = fail(id, target, fmt.Sprintf("%s (%s) is %d bytes", path, key, len(data)),
			fmt.Sprintf("a PEM file of at most %d bytes", maxPEMFile), "point "+key+" at the PEM file itself")
	case err == nil:
		return data, nil
	case errors.Is(err, fs.ErrNotExist):
		r = fail(id, target, fmt.Sprintf("%s (%s) does not exist", path, key), "a readable PEM file",
			fmt.Sprintf("copy the file there or correct %s; a relative path is read from the config file's folder (%s)", key, filepath.Dir(path)))
	case errors.Is(err, fs.ErrPermission):
		r = fail(id, target, fmt.Sprintf("%s (%s) is not readable: permission denied", path, key), "a file readable by the user running xgw",
			"chown or chmod it for that user (keep a key file mode 0600)")
	default:
		r = fail(id, target, fmt.Sprintf("%s (%s) could not be read: %v", path, key, err), "a readable PEM file", "check the path and the disk")
	}
	return nil, &r
}

func configName(env *Env) string {
	if env.Config.File == "" {
		return "the config file"
	}
	return env.Config.File
}

// loadCertChain reads tls.cert: the leaf first, then any intermediates.
func loadCertChain(env *Env, id, target string) ([]*x509.Certificate, *Result) {
	data, bad := readTLSFile(env, id, target, "tls.cert", env.Config.TLS.Cert)
	if bad != nil {
		return nil, bad
	}
	path := env.Config.Path(env.Config.TLS.Cert)
	certs, problem := parseCertsPEM(data)
	if problem != "" {
		r := fail(id, target, path+" (tls.cert) "+problem,
			"PEM: the gateway's certificate first (-----BEGIN CERTIFICATE-----), then its intermediate CAs",
			pemFix(data, "tls.cert"))
		return nil, &r
	}
	return certs, nil
}

// parseCertsPEM returns the CERTIFICATE blocks of data, or what is wrong.
// Other blocks (a key kept in the same file) are passed over.
func parseCertsPEM(data []byte) ([]*x509.Certificate, string) {
	var certs []*x509.Certificate
	var others []string
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			others = append(others, b.Type)
			continue
		}
		if len(certs) == maxCertChain {
			return nil, fmt.Sprintf("holds more than %d certificates", maxCertChain)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Sprintf("certificate %d is not valid X.509: %v", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	switch {
	case len(certs) > 0:
		return certs, ""
	case len(others) > 0:
		return nil, "holds no certificate, only PEM blocks of type " + strings.Join(others, ", ")
	default:
		return nil, "is not PEM (" + notPEMKind(data) + ")"
	}
}

func notPEMKind(data []byte) string {
	switch {
	case len(data) == 0:
		return "the file is empty"
	case data[0] == 0x30: // an ASN.1 SEQUENCE: DER or PKCS#12
		return "binary DER or PKCS#12/.pfx data"
	case bytes.Contains(data, []byte("-----BEGIN")):
		return "a -----BEGIN block whose body is not valid base64 or has no matching -----END line"
	default:
		return "no -----BEGIN line found"
	}
}

func pemFix(data []byte, key string) string {
	if len(data) > 0 && data[0] == 0x30 {
		return "convert it: openssl x509 -inform der -in FILE -out cert.pem, or from a Windows .pfx export: openssl pkcs12 -in FILE.pfx -nodes -out both.pem and split certificate and key"
	}
	if key == "tls.cert" {
		return "export the certificate as Base-64 (PEM), or check that tls.cert and tls.key are not swapped"
	}
	return "export the private key as PEM (openssl pkcs12 -in FILE.pfx -nocerts -nodes -out key.pem), or check that tls.cert and tls.key are not swapped"
}

// certKeyResult loads tls.key and checks that it is the certificate's key.
func certKeyResult(env *Env, id string, leaf *x509.Certificate) Result {
	const target = "key"
	data, bad := readTLSFile(env, id, target, "tls.key", env.Config.TLS.Key)
	if bad != nil {
		return *bad
	}
	path := env.Config.Path(env.Config.TLS.Key)
	key, found, fix := parseKeyPEM(data)
	if key == nil {
		return fail(id, target, path+" (tls.key) "+found, "an unencrypted PEM private key (PKCS#8, PKCS#1 or SEC 1)", fix)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return fail(id, target,
			fmt.Sprintf("%s (tls.key) holds a key (%s) that does not belong to the certificate (%s, %s key)", path, keyKind(key.Public()), certSummary(leaf), keyKind(leaf.PublicKey)),
			"the private key the certificate was issued for",
			"use the key file created with the certificate request; if it is lost, request a new certificate with a new key")
	}
	return pass(id, target, path+": "+keyKind(key.Public())+" key, matches the certificate")
}

// parseKeyPEM returns the first private key in data, or what is wrong and the fix.
func parseKeyPEM(data []byte) (crypto.Signer, string, string) {
	var others []string
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			others = append(others, b.Type)
			continue
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, "is encrypted with a passphrase", "xgw starts unattended: decrypt it once with openssl pkey -in key.pem -out key-plain.pem and keep that file mode 0600"
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			return nil, "holds an unsupported " + b.Type, "convert it: openssl pkey -in key.pem -out key-pkcs8.pem"
		}
		if err != nil {
			return nil, fmt.Sprintf("holds a %s block that does not parse: %v", b.Type, err), "export the key again as PEM"
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Sprintf("holds a %T key, which cannot sign", k), "use an RSA or ECDSA key"
		}
		return s, "", ""
	}
	if len(others) > 0 {
		return nil, "holds no private key, only PEM blocks of type " + strings.Join(others, ", "), pemFix(data, "tls.key")
	}
	return nil, "is not PEM (" + notPEMKind(data) + ")", pemFix(data, "tls.key")
}

func keyKind(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d-bit", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	default:
		return fmt.Sprintf("%T", pub)
	}
}

// certChainResult verifies the chain to the roots in tls.ca. In the usual
// private-CA setup tls.ca holds the CA of the Edge's certificate and ours,
// and each side must trust the other's root (seed article, step 5).
func certChainResult(env *Env, id string, chain []*x509.Certificate) Result {
	const target = "chain"
	leaf := chain[0]
	if env.Config.TLS.CA == "" {
		if t := env.Config.SIP.Edge.Transport; t != "tls" {
			return pass(id, target, "not verified: tls.ca is not set, and with sip.edge.transport "+t+" there is no mutual TLS with the Edge")
		}
		return fail(id, target, "tls.ca is not set", "tls.ca naming the CA that issued the Edge's certificate and ours",
			"set tls.ca: mutual TLS with the Edge (sip.edge.transport: tls) needs it")
	}
	data, bad := readTLSFile(env, id, target, "tls.ca", env.Config.TLS.CA)
	if bad != nil {
		return *bad
	}
	caPath := env.Config.Path(env.Config.TLS.CA)
	roots, problem := parseCertsPEM(data)
	if problem != "" {
		return fail(id, target, caPath+" (tls.ca) "+problem, "PEM CA certificates", pemFix(data, "tls.cert"))
	}
	pool := x509.NewCertPool()
	var names []string
	for _, r := range roots {
		pool.AddCert(r)
		names = append(names, r.Subject.CommonName)
	}
	inters := x509.NewCertPool()
	for _, c := range chain[1:] {
		inters.AddCert(c)
	}
	// EKU is tls.eku's business, hence ExtKeyUsageAny.
	verify := func(at time.Time) ([][]*x509.Certificate, error) {
		return leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inters, CurrentTime: at,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	}
	at := env.Now()
	verified, err := verify(at)
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) && invalid.Reason == x509.Expired && invalid.Cert == leaf {
		// The leaf's own dates are the validity result's business: an
		// expired leaf must not hide a wrong chain, so look whether the
		// chain links up within the leaf's validity period.
		at = leaf.NotAfter
		if env.Now().Before(leaf.NotBefore) {
			at = leaf.NotBefore
		}
		verified, err = verify(at)
	}
	cas := strings.Join(names, ", ")
	if err == nil {
		var path []string
		for _, c := range verified[0][1:] {
			path = append(path, c.Subject.CommonName)
		}
		return pass(id, target, "verifies to tls.ca "+caPath+" via "+strings.Join(path, " -> "))
	}
	expected := "a chain from the certificate to a CA in tls.ca (" + cas + ")"
	var unknown x509.UnknownAuthorityError
	var insecure x509.InsecureAlgorithmError
	switch {
	case errors.As(err, &unknown):
		return fail(id, target,
			fmt.Sprintf("the certificate is issued by %q, which is not in tls.ca %s (holds: %s)", leaf.Issuer.CommonName, caPath, cas),
			expected,
			fmt.Sprintf("add our issuing CA (%s) to the Edge's trusted root store and to tls.ca; if %q is an intermediate CA, append it to tls.cert after the gateway's certificate", leaf.Issuer.CommonName, leaf.Issuer.CommonName))
	case errors.As(err, &invalid):
		return fail(id, target, fmt.Sprintf("the chain to tls.ca %s is invalid at %s: %v", caPath, at.UTC().Format(time.DateOnly), err), expected,
			"renew the expired or unusable CA certificate named above, or have the certificate issued by a valid CA")
	case errors.As(err, &insecure):
		return fail(id, target, fmt.Sprintf("the chain uses an insecure signature: %v", err), expected,
			"have the certificate issued again with SHA-256 signatures")
	default:
		return fail(id, target, fmt.Sprintf("the chain to tls.ca %s does not verify: %v", caPath, err), expected,
			"check that tls.cert holds the gateway's certificate then its intermediates, and tls.ca the root CAs")
	}
}

// certValidityResult grades the leaf's validity period against env.Now.
func certValidityResult(env *Env, id string, leaf *x509.Certificate) Result {
	const target = "validity"
	now := env.Now()
	period := fmt.Sprintf("valid %s to %s", leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	left := leaf.NotAfter.Sub(now)
	renew := "renew the certificate with the same CN and SANs (reusing the CSR is fine), install it, then restart xgw"
	switch {
	case now.Before(leaf.NotBefore):
		return fail(id, target, "not yet valid: "+period+"; now is "+now.UTC().Format(time.RFC3339),
			"a certificate whose validity period has begun",
			"check this host's clock (NTP) and the CA's; or wait until "+leaf.NotBefore.UTC().Format(time.RFC3339))
	case left <= 0:
		return fail(id, target, "expired: "+period, "a certificate valid now", renew)
	case left < certExpiryFail:
		return fail(id, target, fmt.Sprintf("expires in %s: %s", daysLeft(left), period),
			fmt.Sprintf("more than %d days of validity left", int(certExpiryWarn.Hours()/24)), renew+" now")
	case left < certExpiryWarn:
		return warn(id, target, fmt.Sprintf("expires in %s: %s", daysLeft(left), period),
			fmt.Sprintf("more than %d days of validity left", int(certExpiryWarn.Hours()/24)), renew)
	}
	return pass(id, target, fmt.Sprintf("%s (%s left)", period, daysLeft(left)))
}

func daysLeft(d time.Duration) string {
	days := int(d.Hours() / 24)
	if days == 1 {
		return "1 day"
	}
	if days == 0 {
		return fmt.Sprintf("%.0f hours", d.Hours())
	}
	return fmt.Sprintf("%d days", days)
}
