// Package packaging holds what the deb and rpm packages install besides the
// binary (see .goreleaser.yaml, nfpms); its tests hold the systemd unit to its
// hardening and the package layout to the unit.
package packaging

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/internal/testenv"
	"go.yaml.in/yaml/v3"
)

// unit reads xgw.service as key -> values, in order, for [Service] and the
// other sections alike (the keys do not clash).
func unit(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open("xgw.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("xgw.service: %q is not key=value", line)
		}
		out[k] = append(out[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestUnitHardening(t *testing.T) {
	u := unit(t)
	tests := []struct {
		key  string
		want string // the only value the key may have; "" = must be absent
	}{
		{"User", "xgw"},
		{"Group", "xgw"},
		{"ExecStart", "/usr/bin/xgw serve --config /etc/xgw/xgw.yaml"},
		{"ExecReload", "/bin/kill -HUP $MAINPID"},
		{"Restart", "on-failure"},
		{"AmbientCapabilities", "CAP_NET_BIND_SERVICE"},
		{"CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"},
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"ReadWritePaths", "/var/lib/xgw"},
		{"StateDirectory", "xgw"},
		// A capability held in a user namespace cannot bind host ports.
		{"PrivateUsers", ""},
		// Prometheus' process collector reads /proc/stat.
		{"ProcSubset", ""},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got := u[tt.key]
			if tt.want == "" {
				if len(got) != 0 {
					t.Errorf("%s=%q, want it absent", tt.key, got)
				}
				return
			}
			if !slices.Equal(got, []string{tt.want}) {
				t.Errorf("%s = %q, want exactly %q", tt.key, got, tt.want)
			}
		})
	}
}

// systemd's own reading of the unit: no unknown key or bad value, and an
// exposure score that stays where the hardening put it (1.5 when written).
func TestUnitSystemdAnalyze(t *testing.T) {
	sa := testenv.Binary(t, "systemd-analyze")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("verify", func(t *testing.T) {
		// verify wants ExecStart's program to exist: point it at any
		// executable, this test binary.
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile("xgw.service")
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "xgw.service")
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(data), "/usr/bin/xgw", self)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(ctx, sa, "verify", path).CombinedOutput()
		if err != nil || len(out) != 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})
	t.Run("security", func(t *testing.T) {
		// --threshold is in tenths: fail above an exposure of 2.0.
		out, err := exec.CommandContext(ctx, sa, "security", "--offline=yes", "--threshold=20", "--no-pager", "xgw.service").CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze security: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Log(lines[len(lines)-1])
	})
}

// nfpm is the part of .goreleaser.yaml the packages come from.
type nfpm struct {
	Formats  []string `yaml:"formats"`
	Bindir   string   `yaml:"bindir"`
	Contents []struct {
		Src      string `yaml:"src"`
		Dst      string `yaml:"dst"`
		Type     string `yaml:"type"`
		Packager string `yaml:"packager"`
	} `yaml:"contents"`
	Scripts map[string]string `yaml:"scripts"`
}

func goreleaser(t *testing.T) (hooks []string, pkgs []nfpm) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", ".goreleaser.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Before struct {
			Hooks []string `yaml:"hooks"`
		} `yaml:"before"`
		NFPMs []nfpm `yaml:"nfpms"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Before.Hooks, cfg.NFPMs
}

// The packages must install what the unit refers to, from files that exist
// or that the before hooks generate.
func TestPackageLayout(t *testing.T) {
	hooks, pkgs := goreleaser(t)
	if len(pkgs) != 1 {
		t.Fatalf("%d nfpms entries, want 1", len(pkgs))
	}
	p := pkgs[0]
	if !slices.Equal(p.Formats, []string{"deb", "rpm"}) {
		t.Errorf("formats = %q, want deb and rpm", p.Formats)
	}
	execStart := unit(t)["ExecStart"][0]
	if bin := p.Bindir + "/xgw"; !strings.HasPrefix(execStart, bin+" ") {
		t.Errorf("ExecStart %q does not run the packaged %s", execStart, bin)
	}
	dst := map[string]string{} // dst -> type
	for _, c := range p.Contents {
		dst[c.Dst] = c.Type
		if c.Src == "" {
			continue
		}
		if strings.HasPrefix(c.Src, "completions/") {
			if !slices.Contains(hooks, "sh packaging/completions.sh") {
				t.Errorf("%s is generated by no before hook", c.Src)
			}
			continue
		}
		if _, err := os.Stat(filepath.Join("..", c.Src)); err != nil {
			t.Errorf("content %s: %v", c.Src, err)
		}
	}
	for _, want := range []struct{ path, typ string }{
		{"/usr/lib/systemd/system/xgw.service", ""},
		{"/etc/xgw/xgw.yaml", "config|noreplace"},
		{"/usr/share/bash-completion/completions/xgw", ""},
		{"/usr/share/fish/vendor_completions.d/xgw.fish", ""},
		{"/usr/share/zsh/vendor-completions/_xgw", ""},
		{"/usr/share/zsh/site-functions/_xgw", ""},
	} {
		typ, ok := dst[want.path]
		if !ok || typ != want.typ {
			t.Errorf("%s: installed %v, type %q; want type %q", want.path, ok, typ, want.typ)
		}
	}
	if !strings.HasSuffix(execStart, " /etc/xgw/xgw.yaml") {
		t.Errorf("ExecStart %q does not read the packaged config /etc/xgw/xgw.yaml", execStart)
	}
	for _, name := range []string{"postinstall", "preremove", "postremove"} {
		script := p.Scripts[name]
		if script == "" {
			t.Errorf("no %s script", name)
			continue
		}
		// Parsed by /bin/sh (dash on Debian), the shell dpkg and rpm run them with.
		if out, err := exec.Command("sh", "-n", filepath.Join("..", script)).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", script, err, out)
		}
	}
}
