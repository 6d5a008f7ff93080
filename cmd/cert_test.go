package cmd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/xgw-gateway/xgw/report"
)

func TestCertRequestFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want func(*certRequestOptions) bool
	}{
		{"defaults", nil, func(o *certRequestOptions) bool {
			return o.keyType == "rsa" && o.rsaBits == 3072 && !o.rsaBitsSet && o.outDir == "" && !o.force && o.template == "XGWServer" && o.ca == ""
		}},
		{"ecdsa", []string{"--key-type", "ecdsa"}, func(o *certRequestOptions) bool { return o.keyType == "ecdsa" && !o.rsaBitsSet }},
		{"rsa bits given", []string{"--rsa-bits", "4096"}, func(o *certRequestOptions) bool { return o.rsaBits == 4096 && o.rsaBitsSet }},
		{"out-dir force", []string{"--out-dir", "/tmp/x", "--force"}, func(o *certRequestOptions) bool { return o.outDir == "/tmp/x" && o.force }},
		{"ca template config", []string{"--ca", `dc1\Litware CA`, "--template", "Gw", "-c", "x.yaml"}, func(o *certRequestOptions) bool {
			return o.ca == `dc1\Litware CA` && o.template == "Gw" && o.configPath == "x.yaml"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _ := TestStreams()
			var got *certRequestOptions
			g := &globalOptions{}
			root := &cobra.Command{Use: "xgw"}
			g.addFlags(root.PersistentFlags())
			root.AddCommand(newCertCmd(s, g, func(_ context.Context, o *certRequestOptions) error { got = o; return nil }))
			root.SetArgs(append([]string{"cert", "request"}, tt.args...))
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			if got == nil || !tt.want(got) {
				t.Errorf("options = %+v", got)
			}
		})
	}
}

// configDir copies the full test config into a fresh folder; its tls.key is
// key.pem and its tls.cert cert.pem, relative to that folder.
func configDir(t *testing.T) (dir, cfg string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "config", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	cfg = filepath.Join(dir, "xgw.yaml")
	if err := os.WriteFile(cfg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, cfg
}

var fullNames = []string{"xgw-int.litware.test", "xmpp.litware.test", "litware.test", "college.litware.test"}

func TestCertRequest(t *testing.T) {
	tests := []struct {
		name     string
		env      func(cfg string) map[string]string
		args     func(dir, cfg string) []string
		outDir   func(dir string) string // where the files must be
		wantKey  string
		wantOut  []string
		wantNote bool // the key is not where tls.key says
	}{
		{
			name:    "default RSA 3072 next to the config",
			args:    func(_, cfg string) []string { return []string{"cert", "request", "-c", cfg} },
			outDir:  func(dir string) string { return dir },
			wantKey: "RSA 3072",
			wantOut: []string{
				`certreq -submit -config "CAHOST\CA Name" -attrib "CertificateTemplate:XGWServer" xgw.csr xgw.cer xgw-chain.p7b`,
				"Digital Signature, Key Encipherment",
				"Names       xgw-int.litware.test, xmpp.litware.test, litware.test, college.litware.test",
			},
		},
		{
			name: "ECDSA into --out-dir, config from XGW_CONFIG, CA and template named",
			env:  func(cfg string) map[string]string { return map[string]string{"XGW_CONFIG": cfg} },
			args: func(dir, _ string) []string {
				out := filepath.Join(dir, "renewal")
				if err := os.Mkdir(out, 0o700); err != nil {
					t.Fatal(err)
				}
				return []string{"cert", "request", "--key-type", "ecdsa", "--out-dir", out, "--ca", `dc1.litware.test\Litware Issuing CA`, "--template", "LitwareGateway"}
			},
			outDir:  func(dir string) string { return filepath.Join(dir, "renewal") },
			wantKey: "ECDSA P-256",
			wantOut: []string{
				`certreq -submit -config "dc1.litware.test\Litware Issuing CA" -attrib "CertificateTemplate:LitwareGateway" xgw.csr`,
				`certreq -retrieve -config "dc1.litware.test\Litware Issuing CA" RequestId`,
				"Requested   Server Authentication + Client Authentication; Digital Signature\n",
			},
			wantNote: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, cfg := configDir(t)
			var env map[string]string
			if tt.env != nil {
				env = tt.env(cfg)
			}
			code, stdout, stderr := run(t, env, tt.args(dir, cfg)...)
			if code != report.ExitOK {
				t.Fatalf("exit %d, stderr %s", code, stderr)
			}
			out := tt.outDir(dir)
			keyPath, csrPath := filepath.Join(out, "key.pem"), filepath.Join(out, "xgw.csr")
			assertMode(t, keyPath, 0o600)
			assertMode(t, csrPath, 0o644)

			req := readCSR(t, csrPath)
			if err := req.CheckSignature(); err != nil {
				t.Errorf("signature: %v", err)
			}
			if req.Subject.CommonName != "xgw-int.litware.test" {
				t.Errorf("CN = %q", req.Subject.CommonName)
			}
			if !slices.Equal(req.DNSNames, fullNames) {
				t.Errorf("DNS names = %q, want %q", req.DNSNames, fullNames)
			}
			if got := requestedEKU(t, req); !slices.Equal(got, []string{"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"}) {
				t.Errorf("requested EKU = %q, want serverAuth, clientAuth", got)
			}
			if got := keyName(req.PublicKey); got != tt.wantKey {
				t.Errorf("key = %s, want %s", got, tt.wantKey)
			}
			if got := keyName(readKey(t, keyPath)); got != tt.wantKey {
				t.Errorf("key file holds %s, want %s", got, tt.wantKey)
			}

			for _, want := range append(tt.wantOut, "Wrote "+keyPath, "Wrote "+csrPath,
				"openssl req -in "+csrPath+" -noout -text", "openssl x509 -in xgw.cer -out "+filepath.Join(out, "cert.pem")) {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
			if got := strings.Contains(stdout, "Note: the config's tls.key is "+filepath.Join(dir, "key.pem")); got != tt.wantNote {
				t.Errorf("note about tls.key shown = %v, want %v:\n%s", got, tt.wantNote, stdout)
			}
		})
	}
}

// Refused requests write nothing.
func TestCertRequestRefused(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  []string
	}{
		{"RSA below 2048", []string{"--rsa-bits", "1024"}, report.ExitUsage, []string{"--rsa-bits 1024", "found 1024 bits, expected at least 2048"}},
		{"RSA 2047", []string{"--rsa-bits", "2047"}, report.ExitUsage, []string{"expected at least 2048"}},
		{"RSA too large", []string{"--rsa-bits", "65536"}, report.ExitUsage, []string{"expected at most 8192"}},
		{"unknown key type", []string{"--key-type", "dsa"}, report.ExitUsage, []string{`--key-type: found key type "dsa", expected rsa or ecdsa`}},
		{"bits with ecdsa", []string{"--key-type", "ecdsa", "--rsa-bits", "4096"}, report.ExitUsage, []string{"--rsa-bits", "--key-type rsa only"}},
		{"missing out-dir", []string{"--key-type", "ecdsa", "--out-dir", "nope"}, report.ExitUsage, []string{"--out-dir nope", "create it first"}},
		{"extra argument", []string{"xgw.csr"}, report.ExitUsage, []string{"unknown command"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, cfg := configDir(t)
			code, stdout, stderr := run(t, nil, append([]string{"cert", "request", "-c", cfg}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr = %q, want it to contain %q", stderr, want)
				}
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			assertOnly(t, dir, "xgw.yaml")
		})
	}
	t.Run("bad config", func(t *testing.T) {
		dir := t.TempDir()
		code, _, stderr := run(t, nil, "cert", "request", "-c", filepath.Join("..", "testdata", "config", "bad-values.yaml"), "--out-dir", dir)
		if code != report.ExitUsage || !strings.Contains(stderr, "sip.listen") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		assertOnly(t, dir)
	})
}

func TestCertRequestKeepsKey(t *testing.T) {
	dir, cfg := configDir(t)
	keyPath := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyPath, []byte("the key in service"), 0o640); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, nil, "cert", "request", "-c", cfg, "--key-type", "ecdsa")
	if code != report.ExitFailed || !strings.Contains(stderr, keyPath+": a private key is already there") || !strings.Contains(stderr, "--force") {
		t.Errorf("exit %d, stderr %q; want 1 naming the key and --force", code, stderr)
	}
	if data, _ := os.ReadFile(keyPath); string(data) != "the key in service" {
		t.Errorf("key replaced without --force: %q", data)
	}
	assertOnly(t, dir, "key.pem", "xgw.yaml")

	code, _, stderr = run(t, nil, "cert", "request", "-c", cfg, "--key-type", "ecdsa", "--force")
	if code != report.ExitOK {
		t.Fatalf("with --force: exit %d, %s", code, stderr)
	}
	if got := keyName(readKey(t, keyPath)); got != "ECDSA P-256" {
		t.Errorf("after --force the key file holds %s", got)
	}
	assertMode(t, keyPath, 0o600)
	assertOnly(t, dir, "key.pem", "xgw.csr", "xgw.yaml")
}

func assertMode(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != mode&^umask(t) {
		t.Errorf("%s mode = %o, want %o", path, fi.Mode().Perm(), mode&^umask(t))
	}
}

// umask is the process's file creation mask, learnt from a probe file so the
// test holds under any umask.
func umask(t *testing.T) os.FileMode {
	t.Helper()
	p := filepath.Join(t.TempDir(), "probe")
	if err := os.WriteFile(p, nil, 0o777); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return 0o777 &^ fi.Mode().Perm()
}

// assertOnly checks dir holds exactly the named files.
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, names) {
		t.Errorf("%s holds %q, want %q", dir, got, names)
	}
}

func readCSR(t *testing.T, path string) *x509.CertificateRequest {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("%s: no CERTIFICATE REQUEST block", path)
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func readKey(t *testing.T, path string) any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("%s: no PRIVATE KEY block", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// requestedEKU returns the extended key usage OIDs crypto/x509 read from the
// request's extensionRequest attribute.
func requestedEKU(t *testing.T, req *x509.CertificateRequest) []string {
	t.Helper()
	for _, e := range req.Extensions {
		if e.Id.String() != "2.5.29.37" {
			continue
		}
		var oids []asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(e.Value, &oids); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, o := range oids {
			out = append(out, o.String())
		}
		return out
	}
	return nil
}

func keyName(k any) string {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return "RSA " + strconv.Itoa(k.N.BitLen())
	case *rsa.PrivateKey:
		return "RSA " + strconv.Itoa(k.N.BitLen())
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return "ECDSA P-256"
		}
	case *ecdsa.PrivateKey:
		if k.Curve == elliptic.P256() {
			return "ECDSA P-256"
		}
	}
	return "other"
}
