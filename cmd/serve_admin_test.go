package cmd

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xgw-gateway/xgw/checks"
	"github.com/xgw-gateway/xgw/gateway"
	"github.com/xgw-gateway/xgw/gateway/admin"
	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/gateway/metrics"
	"github.com/xgw-gateway/xgw/internal/certtest"
	"github.com/xgw-gateway/xgw/report"
)

// The periodic checks leave out those that stand in for the gateway on its
// own addresses, and export only the checks they run.
func TestPeriodicChecks(t *testing.T) {
	var ids []string
	for _, c := range periodicChecks(checks.All()) {
		ids = append(ids, c.ID)
	}
	for _, id := range []string{"net.xmpp", "net.hairpin", "bind.sip", "bind.xmpp"} {
		if slices.Contains(ids, id) {
			t.Errorf("periodic checks include %s", id)
		}
	}
	for _, id := range []string{"config", "dns.srv", "tls.cert", "edge", "xmpp.peer"} {
		if !slices.Contains(ids, id) {
			t.Errorf("periodic checks lack %s", id)
		}
	}
	rep := &report.Report{Results: []checks.Result{
		{ID: "config", Target: "xgw.yaml", Status: checks.Pass},
		{ID: "dns.srv", Target: "litware.test", Status: checks.Warn},
		{ID: "edge", Target: "edge:5061", Status: checks.Fail},
		{ID: "xmpp.peer", Target: "gmail.test", Status: checks.Skip},
		{ID: "net.xmpp", Target: "192.0.2.20:5269", Status: checks.Fail},
	}}
	got := checkResults(rep, periodicChecks(checks.All()))
	want := []metrics.CheckResult{{ID: "config", Target: "xgw.yaml", Status: 0}, {ID: "dns.srv", Target: "litware.test", Status: 1},
		{ID: "edge", Target: "edge:5061", Status: 2}, {ID: "xmpp.peer", Target: "gmail.test", Status: 3}}
	if !slices.Equal(got, want) {
		t.Errorf("checkResults = %v, want %v", got, want)
	}
}

// --admin-listen is held to admin.listen's rule: loopback, or a token. The
// refusal comes before any check runs or port is bound.
func TestServeAdminListenFlag(t *testing.T) {
	dir := t.TempDir()
	certtest.NewCA(t, "Flag CA").Issue(t, certtest.Leaf{CN: "xgw-int.litware.test", ECDSA: true}).WriteFiles(t, dir, nil)
	path := filepath.Join(dir, "xgw.yaml")
	if err := os.WriteFile(path, []byte(`sip: {domains: [litware.test], listen: 127.0.0.1:0, edge: {host: 127.0.0.1, transport: tcp}}
xmpp: {listen: 127.0.0.1:0, internal_fqdn: xgw-int.litware.test, external_fqdn: xmpp.litware.test}
tls: {cert: cert.pem, key: key.pem}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := serveCtx(t.Context(), "-c", path, "--admin-listen", "0.0.0.0:9269")
	if code != 2 || !strings.Contains(stderr, `--admin-listen: `) || !strings.Contains(stderr, "not a loopback address") || stdout != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 2 naming the flag and the rule, and no check report", code, stdout, stderr)
	}
}

// reload (SIGHUP): a bad file is refused and changes nothing; a good one
// applies log.level and admin.token.
func TestServeReload(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "Reload CA")
	ca.Issue(t, certtest.Leaf{CN: "xgw-int.litware.test", DNSNames: []string{"xgw-int.litware.test"}, ECDSA: true}).WriteFiles(t, dir, nil)
	const base = `sip:
  domains: [litware.test]
  listen: 127.0.0.1:0
  edge: {host: 127.0.0.1, port: 9, transport: tcp}
xmpp:
  listen: 127.0.0.1:0
  internal_fqdn: xgw-int.litware.test
  external_fqdn: xmpp.litware.test
  federation: [{domain: peer.test, auth: dialback}]
tls: {cert: cert.pem, key: key.pem}
`
	path := filepath.Join(dir, "xgw.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(base)
	cfg, err := config.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	level := new(slog.LevelVar)
	log, err := newLevelLogger(&logs, level, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(cfg, gateway.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	adm := admin.New(http.NotFoundHandler(), srv.Ready, "")
	metricsStatus := func() int {
		rec := httptest.NewRecorder()
		adm.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Code
	}

	tests := []struct {
		name, file string
		applied    bool // reload returns the new config
		wantLog    string
		wantLevel  slog.Level
		wantStatus int // /metrics without a token
	}{
		{"bad file refused", base + "log: {level: loud}\nadmin: {token: t}\n", false, `"msg":"config reload refused: the running config stays"`, slog.LevelInfo, 404},
		{"bad partner refused", strings.Replace(base, "domain: peer.test", "domain: litware.test", 1) + "log: {level: debug}\n", false, `expected a remote XMPP domain, not one of sip.domains`, slog.LevelInfo, 404},
		{"level and token applied", base + "log: {level: debug}\nadmin: {token: t}\n", true, `"msg":"config reloaded"`, slog.LevelDebug, 401},
		{"restart needed named", strings.Replace(base, "port: 9,", "port: 10,", 1), true, `"key":"sip.edge"`, slog.LevelDebug, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs.Reset()
			write(tt.file)
			if nc := reload(path, flagOverrides{}, srv, adm, level, log); (nc != nil) != tt.applied {
				t.Errorf("reload returned %v, want applied %v", nc, tt.applied)
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log lacks %s:\n%s", tt.wantLog, logs.String())
			}
			if level.Level() != tt.wantLevel {
				t.Errorf("level %v, want %v", level.Level(), tt.wantLevel)
			}
			if got := metricsStatus(); got != tt.wantStatus {
				t.Errorf("/metrics without a token: %d, want %d", got, tt.wantStatus)
			}
		})
	}
}
