package lab

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// prosUpdate tells whether to rewrite the golden configurations
// (go test -run ProsodyConfig -update). Other lab tests may define -update
// first; then it is shared.
var prosUpdate = func() func() bool {
	if f := flag.Lookup("update"); f != nil {
		return func() bool { return f.Value.String() == "true" }
	}
	p := flag.Bool("update", false, "rewrite golden files in testdata/")
	return func() bool { return *p }
}()

func TestProsodyConfigLua(t *testing.T) {
	tests := []struct {
		name   string
		golden string
		cfg    ProsodyConfig
		ca     string
	}{
		{name: "defaults", golden: "prosody-defaults.cfg.lua", cfg: ProsodyConfig{Domain: "a.test", Addr: "127.0.1.1"}},
		{
			name: "external and dialback only", golden: "prosody-strict.cfg.lua", ca: "/lab/trust-ca.pem",
			cfg: ProsodyConfig{Domain: "b.test", Addr: "127.0.1.2", S2SSecureAuth: true, RequireEncryption: true,
				DialbackOnly: true, Extra: `c2s_timeout = 60`},
		},
		{name: "no s2s TLS", golden: "prosody-notls.cfg.lua", cfg: ProsodyConfig{Domain: "c.test", Addr: "127.0.1.3", NoS2STLS: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.cfg.lua("/lab", "/lab/cert.pem", "/lab/key.pem", tc.ca)
			path := filepath.Join("testdata", tc.golden)
			if prosUpdate() {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("config differs from %s (run with -update after checking):\n%s", path, got)
			}
		})
	}
}

func TestProsodyConfigCheck(t *testing.T) {
	tests := []struct {
		name    string
		cfg     ProsodyConfig
		wantErr string // "" for a valid config
	}{
		{"valid", ProsodyConfig{Domain: "a.test", Addr: "127.0.1.1", Users: map[string]string{"alice": "pw"}}, ""},
		{"upper-case domain", ProsodyConfig{Domain: "A.test", Addr: "127.0.1.1"}, `domain "A.test"`},
		{"single-label domain", ProsodyConfig{Domain: "localhost", Addr: "127.0.1.1"}, `domain "localhost"`},
		{"Lua injection in domain", ProsodyConfig{Domain: `a.test" os.execute("x`, Addr: "127.0.1.1"}, "not a lower-case DNS name"},
		{"address not loopback", ProsodyConfig{Domain: "a.test", Addr: "192.0.2.1"}, "not an IPv4 loopback"},
		{"address with port", ProsodyConfig{Domain: "a.test", Addr: "127.0.1.1:5269"}, "not an IPv4 loopback"},
		{"IPv6 loopback", ProsodyConfig{Domain: "a.test", Addr: "::1"}, "not an IPv4 loopback"},
		{"bad user", ProsodyConfig{Domain: "a.test", Addr: "127.0.1.1", Users: map[string]string{"Al ice": "pw"}}, `user "Al ice"`},
		{"contradiction", ProsodyConfig{Domain: "a.test", Addr: "127.0.1.1", NoS2STLS: true, RequireEncryption: true}, "NoS2STLS contradicts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.check()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestProsLuaString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/tmp/x", `"/tmp/x"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"new\nline", `"new\010line"`},
		{"é", `"\195\169"`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := prosLuaString(tc.in); got != tc.want {
				t.Errorf("prosLuaString(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}
