package cmd

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/xgw-gateway/xgw/report"
)

// Flag parsing is tested through the runF stub, so no probe runs.
func TestCheckFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want func(*checkOptions) bool
	}{
		{"defaults", nil, func(o *checkOptions) bool {
			return o.output == "text" && !o.strict && o.timeout == 0 && o.only == nil && !o.online
		}},
		{"json strict", []string{"-o", "json", "--strict"}, func(o *checkOptions) bool { return o.output == "json" && o.strict }},
		{"only comma and repeated", []string{"--only", "dns.srv,dns.a", "--only", "tls.name"}, func(o *checkOptions) bool {
			return slices.Equal(o.only, []string{"dns.srv", "dns.a", "tls.name"})
		}},
		{"skip timeout dns", []string{"--skip", "edge", "--timeout", "2s", "--dns-server", "127.0.0.1:5353"}, func(o *checkOptions) bool {
			return slices.Equal(o.skip, []string{"edge"}) && o.timeout == 2*time.Second && o.dnsServer == "127.0.0.1:5353"
		}},
		{"config and online", []string{"--config", "x.yaml", "--online"}, func(o *checkOptions) bool { return o.configPath == "x.yaml" && o.online }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _ := TestStreams()
			var got *checkOptions
			g := &globalOptions{}
			root := &cobra.Command{Use: "xgw"}
			g.addFlags(root.PersistentFlags())
			root.AddCommand(newCheckCmd(s, g, func(_ context.Context, o *checkOptions) error { got = o; return nil }))
			root.SetArgs(append([]string{"check"}, tt.args...))
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			if got == nil || !tt.want(got) {
				t.Errorf("options = %+v", got)
			}
		})
	}
}

func run(t testing.TB, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	s, out, errOut := TestStreams()
	s.Getenv = func(k string) string { return env[k] }
	root := NewRootCmd(s)
	root.SetArgs(args)
	code = exitCode(root.ExecuteContext(context.Background()), errOut)
	return code, out.String(), errOut.String()
}

// Exit code 2 means nothing was probed: bad flags, bad config, unknown IDs.
func TestUsageErrors(t *testing.T) {
	full := filepath.Join("..", "testdata", "config", "full.yaml")
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{"bad config", nil, []string{"check", "-c", filepath.Join("..", "testdata", "config", "bad-unknown-key.yaml")}, `sip.edge.transprt: found unknown key "transprt"`},
		{"config from env", map[string]string{"XGW_CONFIG": filepath.Join("..", "testdata", "config", "bad-types.yaml")}, []string{"check"}, "sip.domains: found"},
		{"missing config", nil, []string{"check", "-c", filepath.Join(t.TempDir(), "none.yaml")}, "no such file"},
		{"unknown ID", nil, []string{"check", "-c", full, "--only", "dns.svr"}, `unknown check ID "dns.svr"`},
		{"unknown format", nil, []string{"check", "-c", full, "-o", "yaml"}, `unknown output format "yaml"`},
		{"unknown flag", nil, []string{"check", "--bogus"}, "unknown flag: --bogus"},
		{"bad dns server", nil, []string{"check", "-c", full, "--dns-server", "bad host:x"}, `--dns-server "bad host:x": port "x" is not from 1 to 65535 (expected HOST:PORT`},
		{"dns server without host", nil, []string{"check", "-c", full, "--dns-server", ":53"}, `--dns-server ":53": no host before the port`},
		{"dns server bad host", nil, []string{"check", "-c", full, "--dns-server", "ns..example:53"}, `host "ns..example"`},
		{"zero timeout", nil, []string{"check", "-c", full, "--timeout", "0s"}, `--timeout 0s: expected a duration above zero, e.g. --timeout 10s`},
		{"negative timeout", nil, []string{"check", "-c", full, "--timeout", "-1s"}, `--timeout -1s: expected a duration above zero`},
		{"dns bad config", nil, []string{"dns", "-c", filepath.Join("..", "testdata", "config", "bad-values.yaml")}, "sip.listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.env, tt.args...)
			if code != report.ExitUsage {
				t.Errorf("exit code = %d, want %d", code, report.ExitUsage)
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.wantErr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing (no probe may run)", stdout)
			}
		})
	}
}

func TestDNSCommand(t *testing.T) {
	code, out, _ := run(t, nil, "dns", "-c", filepath.Join("..", "testdata", "config", "full.yaml"))
	if code != 0 || !strings.Contains(out, "_xmpp-server._tcp.college.litware.test.\t3600\tIN\tSRV\t0 5 5269 xmpp.litware.test.") {
		t.Errorf("code %d, output:\n%s", code, out)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "xgw dev (commit none") {
		t.Errorf("code %d, output %q", code, out)
	}
}

// --dns-server takes what resolve.New takes: HOST:PORT, or a bare IP for port 53.
func TestDNSServerFlag(t *testing.T) {
	for _, s := range []string{"", "127.0.0.53:53", "127.0.0.1", "::1", "[::1]:5353", "ns1.litware.test:53"} {
		t.Run(s, func(t *testing.T) {
			if err := dnsServerFlag(s); err != nil {
				t.Errorf("dnsServerFlag(%q) = %v, want accepted", s, err)
			}
		})
	}
}
