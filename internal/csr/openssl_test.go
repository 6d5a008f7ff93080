package csr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/internal/testenv"
)

// A CA that copies the requested extensions (as AD CS does with "Supply in
// the request", and as openssl does with -copy_extensions) must issue a
// certificate xgw can serve and dial with: same key, both EKUs, all names.
func TestOpenSSLIssuesFromRequest(t *testing.T) {
	openssl := testenv.Binary(t, "openssl")
	for _, spec := range []KeySpec{{Type: KeyRSA, RSABits: 2048}, {Type: KeyECDSA}} {
		t.Run(spec.String(), func(t *testing.T) {
			dir := t.TempDir()
			res, err := Generate(litware, spec)
			if err != nil {
				t.Fatal(err)
			}
			keyPath, csrPath := filepath.Join(dir, "key.pem"), filepath.Join(dir, "xgw.csr")
			if err := WriteKey(keyPath, res.KeyPEM, false); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(csrPath, res.CSRPEM, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			run := func(args ...string) string {
				t.Helper()
				out, err := exec.CommandContext(ctx, openssl, args...).CombinedOutput()
				if err != nil {
					t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return string(out)
			}

			// The check the command prints for the admin.
			text := run("req", "-in", csrPath, "-noout", "-text", "-verify")
			for _, want := range []string{"CN = xgw-int.litware.test", "DNS:college.litware.test",
				"TLS Web Server Authentication, TLS Web Client Authentication", "Digital Signature"} {
				if !strings.Contains(text, want) {
					t.Errorf("openssl req -text lacks %q:\n%s", want, text)
				}
			}

			caKey, caCert, cert := filepath.Join(dir, "ca.key"), filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem")
			run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
				"-subj", "/CN=Litware Test CA", "-days", "1", "-keyout", caKey, "-out", caCert)
			run("x509", "-req", "-in", csrPath, "-CA", caCert, "-CAkey", caKey, "-CAcreateserial",
				"-copy_extensions", "copy", "-days", "1", "-out", cert)

			pair, err := tls.LoadX509KeyPair(cert, keyPath)
			if err != nil {
				t.Fatalf("the issued certificate does not go with the key: %v", err)
			}
			leaf := pair.Leaf
			caPEM, err := os.ReadFile(caCert)
			if err != nil {
				t.Fatal(err)
			}
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(caPEM)
			for _, use := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				for _, name := range litware.DNSNames {
					if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{use}}); err != nil {
						t.Errorf("verify %s for EKU %d: %v", name, use, err)
					}
				}
			}
		})
	}
}
