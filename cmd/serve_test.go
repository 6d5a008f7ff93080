package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/xgw-gateway/xgw/gateway"
	"github.com/xgw-gateway/xgw/gateway/admin"
	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/certtest"
	"github.com/xgw-gateway/xgw/internal/dnstest"
	"github.com/xgw-gateway/xgw/internal/testenv"
	"github.com/xgw-gateway/xgw/report"
)

// Flag parsing through the runF stub: nothing is probed or served.
func TestServeFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want func(*serveOptions) bool
	}{
		{"defaults", nil, func(o *serveOptions) bool {
			return o.output == "text" && !o.force && o.stateDir == gateway.DefaultStateDir && o.logLevel == "info" &&
				o.logFormat == "" && o.dnsServer == "" && o.skip == nil
		}},
		{"force json logs", []string{"--force", "--log-format", "json", "--log-level", "debug"}, func(o *serveOptions) bool {
			return o.force && o.logFormat == "json" && o.logLevel == "debug"
		}},
		{"state dns skip output", []string{"--state-dir", "/tmp/x", "--dns-server", "127.0.0.1:5353", "--skip", "net.hairpin,edge", "-o", "json"},
			func(o *serveOptions) bool {
				return o.stateDir == "/tmp/x" && o.dnsServer == "127.0.0.1:5353" && slices.Equal(o.skip, []string{"net.hairpin", "edge"}) && o.output == "json"
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _ := TestStreams()
			var got *serveOptions
			g := &globalOptions{}
			root := &cobra.Command{Use: "xgw"}
			g.addFlags(root.PersistentFlags())
			root.AddCommand(newServeCmd(s, g, func(_ context.Context, o *serveOptions) error { got = o; return nil }))
			root.SetArgs(append([]string{"serve"}, tt.args...))
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			if got == nil || !tt.want(got) {
				t.Errorf("options = %+v", got)
			}
		})
	}
}

func TestServeLogger(t *testing.T) {
	tests := []struct {
		name, level, format string
		wantErr             string
	}{
		{"text", "info", "text", ""},
		{"json", "warn", "json", ""},
		{"default for a buffer is json", "info", "", ""},
		{"bad level", "loud", "text", `--log-level "loud"`},
		{"bad format", "info", "xml", `--log-format "xml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			lv := new(slog.LevelVar)
			log, err := newLevelLogger(&b, lv, tt.level, tt.format)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Warn("hello", "k", "v")
			out := b.String()
			isJSON := json.Valid([]byte(strings.TrimSpace(out)))
			if (tt.format != "text") != isJSON || !strings.Contains(out, "hello") {
				t.Errorf("log line %q (json %v)", out, isJSON)
			}
			if lv.Level().String() != strings.ToUpper(tt.level) {
				t.Errorf("level %v, want %s", lv.Level(), tt.level)
			}
		})
	}
}

// Bad serve flags are usage errors (exit 2) before any check runs: the
// report on stdout stays empty.
func TestServeUsageErrors(t *testing.T) {
	full := filepath.Join("..", "testdata", "config", "full.yaml")
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"bad trace protocol", []string{"--trace", "foo"}, `--trace: trace protocol "foo": expected sip, xmpp or dns`},
		{"bad trace with a trace file", []string{"--trace", "sip,smtp", "--trace-file", filepath.Join(t.TempDir(), "t.jsonl")}, `trace protocol "smtp"`},
		{"bad dns server", []string{"--dns-server", "bad host:x"}, `--dns-server "bad host:x"`},
		{"bad log level", []string{"--log-level", "loud"}, `--log-level "loud"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := serveCtx(t.Context(), append([]string{"-c", full, "--state-dir", t.TempDir()}, tt.args...)...)
			if code != report.ExitUsage {
				t.Errorf("exit code %d, want %d; stderr %q", code, report.ExitUsage, stderr)
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr %q, want it to contain %q", stderr, tt.wantErr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing (no check may run)", stdout)
			}
		})
	}
}

// On reload, the flags keep overriding the file: --admin-listen stays the
// admin address (so a file without admin.token cannot open a non-loopback
// /metrics, and admin.listen is not "restart needed"), and an explicit
// --log-level wins over log.level.
func TestServeReloadFlags(t *testing.T) {
	dir := t.TempDir()
	certtest.NewCA(t, "Reload flags CA").Issue(t, certtest.Leaf{CN: "xgw-int.litware.test", DNSNames: []string{"xgw-int.litware.test"}, ECDSA: true}).WriteFiles(t, dir, nil)
	const base = `sip: {domains: [litware.test], listen: 127.0.0.1:0, edge: {host: 127.0.0.1, port: 9, transport: tcp}}
xmpp: {listen: 127.0.0.1:0, internal_fqdn: xgw-int.litware.test, external_fqdn: xmpp.litware.test}
tls: {cert: cert.pem, key: key.pem}
`
	path := filepath.Join(dir, "xgw.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Started as `xgw serve --admin-listen 0.0.0.0:9269 --log-level warn`.
	fo := flagOverrides{adminListen: "0.0.0.0:9269", logLevel: "warn"}
	write(base + "admin: {token: t}\nlog: {level: debug}\n")
	cfg, err := config.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := fo.apply(cfg); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	level := new(slog.LevelVar)
	log, err := newLevelLogger(&logs, level, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	level.UnmarshalText([]byte(cfg.Log.Level))
	srv, err := gateway.New(cfg, gateway.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	adm := admin.New(http.NotFoundHandler(), srv.Ready, cfg.Admin.Token)

	tests := []struct {
		name    string
		file    string
		applied bool
		wantLog string // at level warn, only the refusal is logged
		token   string // admin.token in force after the reload
	}{
		{"token removed: refused", base + "log: {level: debug}\n", false, `--admin-listen: ` + path + `: admin.listen: found \"0.0.0.0:9269\" (not a loopback address)`, "t"},
		{"token changed: applied, listen unchanged", base + "admin: {token: u, listen: 127.0.0.1:9999}\nlog: {level: debug}\n", true, "", "u"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs.Reset()
			write(tt.file)
			nc := reload(path, fo, srv, adm, level, log)
			if (nc != nil) != tt.applied {
				t.Fatalf("reload applied %v, want %v; log:\n%s", nc != nil, tt.applied, logs.String())
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log lacks %s:\n%s", tt.wantLog, logs.String())
			}
			if strings.Contains(logs.String(), `"key":"admin.listen"`) {
				t.Errorf("admin.listen logged as restart needed:\n%s", logs.String())
			}
			if nc != nil && nc.Admin.Listen != fo.adminListen {
				t.Errorf("admin.listen %q after reload, want the flag's %q", nc.Admin.Listen, fo.adminListen)
			}
			if level.Level() != slog.LevelWarn {
				t.Errorf("level %v, want --log-level warn over log.level debug", level.Level())
			}
			for _, token := range []string{"", tt.token} {
				req := httptest.NewRequest("GET", "/metrics", nil)
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				rec := httptest.NewRecorder()
				adm.ServeHTTP(rec, req)
				if want := map[bool]int{true: http.StatusUnauthorized, false: http.StatusNotFound}[token == ""]; rec.Code != want {
					t.Errorf("/metrics with token %q: %d, want %d", token, rec.Code, want)
				}
			}
		})
	}
}

// serveCtx runs `xgw serve` with args until ctx ends and returns what
// run() would: exit code and the two streams.
func serveCtx(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	s, out, errOut := TestStreams()
	root := NewRootCmd(s)
	root.SetArgs(append([]string{"serve"}, args...))
	code = exitCode(root.ExecuteContext(ctx), errOut)
	return code, out.String(), errOut.String()
}

// servingXMPP reports whether the gateway itself answers an XMPP stream on
// addr: until it serves, the pre-flight probes' stand-in listener may answer
// on the same port (its stream id starts xgw-hairpin-).
func servingXMPP(addr, to string) bool {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer conn.Close()
	fmt.Fprintf(conn, `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='peer.example' to='%s' version='1.0'>`, to)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, _ := conn.Read(buf)
	return n > 0 && !strings.Contains(string(buf[:n]), "xgw-hairpin-")
}

// listening reports whether addr accepts TCP connections.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// `xgw serve` against the scenarios' lab deployment with the Edge down:
// without --force it prints the report, exits 1 and binds nothing; with
// --force it logs the failed check, serves both listeners and stops with
// exit 0 when its context ends (what SIGINT/SIGTERM do through Main).
func TestServeChecksGate(t *testing.T) {
	// The scenarios' deployment without its Kamailio: the Edge is down here.
	testenv.Netns(t)
	d := &deployment{ca: certtest.NewCA(t, "Litware Lab CA"), other: certtest.NewCA(t, "Other CA")}
	d.healthy = execTemplate(t, "healthy.zone.tmpl", healthyParams())
	d.healthyDNS = dnstest.Start(t, "127.0.0.1:0", "litware.test", d.healthy).Addr
	edgeDown := scenario{name: "Edge down", params: func(p *labParams) { p.EdgeIP = edgeDownIP }}
	cfg, dnsAddr := d.render(t, t.TempDir(), edgeDown)
	xmppAddr, sipAddr := gatewayIP+":5269", gatewayIP+":5061"
	base := []string{"-c", cfg, "--dns-server", dnsAddr, "--state-dir", t.TempDir(), "-o", "json", "--log-format", "json"}

	t.Run("refuses on a failed check", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		code, stdout, stderr := serveCtx(ctx, base...)
		if code != report.ExitFailed {
			t.Errorf("exit code %d, want %d; stderr: %s", code, report.ExitFailed, stderr)
		}
		if got := decodeReport(t, stdout).with("fail"); !slices.Equal(got, []idTarget{{"edge", edgeTarget}}) {
			t.Errorf("failed checks %v, want edge only", got)
		}
		if !strings.Contains(stderr, "not starting") || !strings.Contains(stderr, "--force") {
			t.Errorf("stderr %q does not say it refused and how to force", stderr)
		}
		for _, a := range []string{xmppAddr, sipAddr} {
			if listening(a) {
				t.Errorf("something listens on %s after a refused start", a)
			}
		}
	})

	t.Run("starts with --force and stops on cancel", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		type result struct {
			code           int
			stdout, stderr string
		}
		done := make(chan result, 1)
		sctx, stop := context.WithCancel(ctx)
		go func() {
			code, out, errOut := serveCtx(sctx, append(base, "--force")...)
			done <- result{code, out, errOut}
		}()
		up := false
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !up; time.Sleep(50 * time.Millisecond) {
			up = servingXMPP(xmppAddr, "school.test") && listening(sipAddr)
		}
		stop()
		var r result
		select {
		case r = <-done:
		case <-ctx.Done():
			t.Fatal("xgw serve did not stop after its context ended")
		}
		if !up {
			t.Fatalf("xgw serve --force never listened on %s and %s; stderr:\n%s", xmppAddr, sipAddr, r.stderr)
		}
		if r.code != report.ExitOK {
			t.Errorf("exit code %d, want 0; stderr:\n%s", r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, `"msg":"starting despite a failed check (--force)"`) || !strings.Contains(r.stderr, `"check":"edge"`) {
			t.Errorf("no warning naming the failed check in the log:\n%s", r.stderr)
		}
		if !strings.Contains(r.stderr, `"msg":"gateway stopped"`) {
			t.Errorf("no graceful stop in the log:\n%s", r.stderr)
		}
		for _, a := range []string{xmppAddr, sipAddr} {
			if listening(a) {
				t.Errorf("%s still listens after the stop", a)
			}
		}
	})
}
