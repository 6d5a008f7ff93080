package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
)

// adminFile is minimal.yaml's content plus extra keys.
func adminFile(t *testing.T, extra string) string {
	t.Helper()
	base, err := os.ReadFile(filepath.Join("..", "..", "testdata", "config", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "xgw.yaml")
	if err := os.WriteFile(p, append(base, []byte(extra)...), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAdminDefaults(t *testing.T) {
	c, err := config.LoadFile(adminFile(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.Listen != "127.0.0.1:9269" || c.Admin.Token != "" || time.Duration(c.Admin.CheckInterval) != 5*time.Minute {
		t.Errorf("admin defaults = %+v, want 127.0.0.1:9269, no token, 5m", c.Admin)
	}
	if c.Log.Level != "" {
		t.Errorf("log.level default = %q, want empty (the --log-level flag decides)", c.Log.Level)
	}
}

func TestAdminValid(t *testing.T) {
	tests := []struct{ name, extra string }{
		{"loopback v6", "admin: {listen: '[::1]:9269'}\n"},
		{"localhost", "admin: {listen: 'localhost:9269'}\n"},
		{"public with token", "admin: {listen: '0.0.0.0:9269', token: s3cret}\n"},
		{"interval and level", "admin: {check_interval: 30s}\nlog: {level: debug}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := config.LoadFile(adminFile(t, tt.extra)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestAdminInvalid(t *testing.T) {
	tests := []struct{ name, extra, want string }{
		{"no port", "admin: {listen: 127.0.0.1}\n", `admin.listen: found "127.0.0.1", expected an address HOST:PORT`},
		{"public without token", "admin: {listen: '0.0.0.0:9269'}\n",
			`admin.listen: found "0.0.0.0:9269" (not a loopback address) without admin.token, expected a loopback address such as 127.0.0.1:9269, or a token`},
		{"interval too short", "admin: {check_interval: 1s}\n", `admin.check_interval: found 1s, expected at least 10s`},
		{"unknown key", "admin: {port: 9269}\n", `admin.port: found unknown key "port", expected one of listen, token, check_interval`},
		{"bad level", "log: {level: verbose}\n", `log.level: found "verbose", expected debug, info, warn or error`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.LoadFile(adminFile(t, tt.extra))
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v, want config.Errors", err)
			}
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.want) || errs[0].Fix == "" {
				t.Errorf("errors = %v\nwant one containing %q, with a fix", err, tt.want)
			}
		})
	}
}
