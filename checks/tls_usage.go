package checks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
)

// tlsKeyCheck: the seed article asks for "at least 2048" bits; 1024-bit RSA
// is refused by current TLS stacks, the Edge's included.
var tlsKeyCheck = Check{
	ID:       "tls.key",
	Title:    "Certificate key is strong enough (RSA >= 2048, ECDSA >= P-256)",
	Requires: []string{"tls.cert"},
	Run:      runTLSKey,
}

const minRSABits = 2048

func runTLSKey(_ context.Context, env *Env) []Result {
	const id = "tls.key"
	leaf, bad := loadLeaf(env, id)
	if bad != nil {
		return bad
	}
	kind := keyKind(leaf.PublicKey)
	expected := fmt.Sprintf("RSA of at least %d bits or ECDSA P-256 or larger", minRSABits)
	fix := "create a new key and have the certificate issued again: " + certRequestHint(env.Config, fmt.Sprintf("rsa:%d", minRSABits))
	switch k := leaf.PublicKey.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return []Result{fail(id, "", kind+" key", expected, fix)}
		}
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize < 256 {
			return []Result{fail(id, "", kind+" key", expected, fix)}
		}
	case ed25519.PublicKey:
		return []Result{warn(id, "", "Ed25519 key: strong, but the Windows TLS stack (Schannel) of OCS/Lync/Skype for Business Edge servers cannot use it", expected, fix)}
	default:
		return []Result{fail(id, "", kind+" key", expected, fix)}
	}
	return []Result{pass(id, "", kind+" key")}
}

// tlsEKUCheck: the gateway is a TLS server to the Edge and to XMPP peers,
// and a TLS client when it connects to them (mutual TLS with the Edge,
// SASL EXTERNAL towards peers), so the certificate needs both usages.
var tlsEKUCheck = Check{
	ID:       "tls.eku",
	Title:    "Certificate allows TLS server and client authentication",
	Requires: []string{"tls.cert"},
	Run:      runTLSEKU,
}

func runTLSEKU(_ context.Context, env *Env) []Result {
	const id = "tls.eku"
	leaf, bad := loadLeaf(env, id)
	if bad != nil {
		return bad
	}
	eku := leaf.ExtKeyUsage
	if len(eku) == 0 && len(leaf.UnknownExtKeyUsage) == 0 {
		return []Result{pass(id, "", "no extended key usage extension: any usage is allowed")}
	}
	if slices.Contains(eku, x509.ExtKeyUsageAny) {
		return []Result{pass(id, "", "extended key usage anyExtendedKeyUsage")}
	}
	server, client := slices.Contains(eku, x509.ExtKeyUsageServerAuth), slices.Contains(eku, x509.ExtKeyUsageClientAuth)
	found := "extended key usage: " + ekuNames(leaf)
	const expected = "serverAuth and clientAuth"
	switch {
	case server && client:
		return []Result{pass(id, "", found)}
	case !client:
		return []Result{fail(id, "", found+"; clientAuth is missing", expected,
			"the gateway is the TLS client when it connects to the Edge (mutual TLS) and to XMPP peers (SASL EXTERNAL); both refuse a certificate without clientAuth."+
				" Public CAs stopped issuing clientAuth in 2026 (Chrome root program; Let's Encrypt from February 2026), so use your private CA"+
				" with a template that has Server and Client Authentication (AD CS: copy the Web Server template and add Client Authentication): "+certRequestHint(env.Config, "rsa:2048"))}
	default:
		return []Result{fail(id, "", found+"; serverAuth is missing", expected,
			"the Edge and XMPP peers connect to the gateway as a TLS server and refuse a certificate without serverAuth: "+certRequestHint(env.Config, "rsa:2048"))}
	}
}

func ekuNames(c *x509.Certificate) string {
	names := map[x509.ExtKeyUsage]string{
		x509.ExtKeyUsageServerAuth: "serverAuth", x509.ExtKeyUsageClientAuth: "clientAuth",
		x509.ExtKeyUsageCodeSigning: "codeSigning", x509.ExtKeyUsageEmailProtection: "emailProtection",
		x509.ExtKeyUsageTimeStamping: "timeStamping", x509.ExtKeyUsageOCSPSigning: "OCSPSigning",
	}
	var out []string
	for _, u := range c.ExtKeyUsage {
		if n, ok := names[u]; ok {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("usage %d", u))
		}
	}
	for _, oid := range c.UnknownExtKeyUsage {
		out = append(out, oid.String())
	}
	return strings.Join(out, ", ")
}
