// Package lab_test is the loopback lab: `bash scripts/lab.sh` runs it (and
// the test suite runs it too). It builds the real xgw binary and brings up,
// inside the test network namespace, every part of a deployment as the seed
// article drew it:
//
//	sipp UAC alice 127.0.3.2 --udp--> Kamailio (the Edge) edge.litware.test 127.0.2.10 --mTLS 5061--> xgw 127.0.1.20
//	sipp UAS alice 127.0.3.1 <--udp-- Kamailio <--mTLS 5061-- xgw
//	xgw 127.0.1.20:5269 <--s2s, dialback--> Prosody xmpp.test 127.0.1.1 <--c2s-- bob
//	DNS for everyone: 127.0.0.53:53 (SRV _xmpp-server._tcp.litware.test -> xmpp.litware.test:5269)
//
// Then it runs `xgw check` (every probe must pass), starts `xgw serve`,
// sends one message each way with non-ASCII text, has alice watch bob's
// presence and bob change it, shows what each side received, and stops
// everything.
package lab_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/internal/certtest"
	"github.com/xgw-gateway/xgw/internal/lab"
	"github.com/xgw-gateway/xgw/internal/testenv"
)

const (
	sipDomain  = "litware.test"
	xmppDomain = "xmpp.test"
	internal   = "xgw-int.litware.test"
	external   = "xmpp.litware.test"
	edgeHost   = "edge.litware.test"
	gatewayIP  = "127.0.1.20"
	prosodyIP  = "127.0.1.1"
	edgeIP     = "127.0.2.10"
	uasAddr    = "127.0.3.1:5060"
	uacAddr    = "127.0.3.2:5060"
	watchAddr  = "127.0.3.4:5060" // alice's presence watcher
)

// The SIP user agents' scenarios are shared with the gateway's end-to-end tests.
var scenarios = filepath.Join("..", "gateway", "testdata", "sipp")

const labZone = `$ORIGIN litware.test.
@                       IN SOA ns hostmaster 1 3600 600 86400 60
_xmpp-server._tcp       IN SRV 0 5 5269 xmpp.litware.test.
xmpp                    IN A   ` + gatewayIP + `
xgw-int                 IN A   ` + gatewayIP + `
edge                    IN A   ` + edgeIP + `
`

const labConfig = `# The loopback lab's xgw.yaml (written by lab/lab_test.go).
sip:
  domains: [` + sipDomain + `]
  listen: ` + gatewayIP + `:5061
  edge: {host: ` + edgeHost + `, port: 5061, transport: tls}
xmpp:
  listen: ` + gatewayIP + `:5269
  internal_fqdn: ` + internal + `
  external_fqdn: ` + external + `
  public_ip: ` + gatewayIP + `
  private_ip: ` + gatewayIP + `
  federation:
    - {domain: ` + xmppDomain + `, auth: dialback}
tls: {cert: cert.pem, key: key.pem, ca: ca.pem}
checks: {dns_server: "127.0.0.53:53", hosts_file: hosts, timeout: 5s}
`

func TestLab(t *testing.T) {
	testenv.Netns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	step := func(format string, args ...any) { t.Logf("==> "+format, args...) }

	step("building xgw")
	dir := t.TempDir()
	xgw := filepath.Join(dir, "xgw")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", xgw, "..").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	step("DNS on 127.0.0.53: %s (SIP domain, gateway names, Edge) and %s (Prosody)", sipDomain, xmppDomain)
	lab.DNS53(t, lab.Zone{Origin: sipDomain, Text: labZone}, lab.ServerZone(xmppDomain, prosodyIP))

	step("certificates: one CA for the gateway and the Edge (mutual TLS)")
	ca := certtest.NewCA(t, "Litware Lab CA")
	gw := ca.Issue(t, certtest.Leaf{CN: internal, DNSNames: []string{internal, external, sipDomain}})
	gw.WriteFiles(t, dir, ca)
	edge := ca.Issue(t, certtest.Leaf{CN: edgeHost, DNSNames: []string{edgeHost}, IPs: []net.IP{net.ParseIP(edgeIP)}})
	edgeCert, edgeKey, edgeCA := edge.WriteFiles(t, t.TempDir(), ca)
	write(t, filepath.Join(dir, "hosts"), "127.0.0.1 localhost\n"+gatewayIP+" "+internal+"\n")
	cfg := filepath.Join(dir, "xgw.yaml")
	write(t, cfg, labConfig)

	step("Kamailio as the Edge on %s:5061 (TLS, client certificates required) and %s:5060 (UDP)", edgeIP, edgeIP)
	kam := lab.StartKamailio(t, lab.KamailioConfig{
		Addr: edgeIP + ":5061", CertFile: edgeCert, KeyFile: edgeKey, CAFile: edgeCA, RequireClientCert: true,
		Listen: []string{"udp:" + edgeIP + ":5060"},
		Routes: []lab.KamailioRoute{
			{Methods: []string{"MESSAGE"}, Domains: []string{xmppDomain}, NextHop: "sip:" + gatewayIP + ":5061;transport=tls"},
			{Methods: []string{"MESSAGE"}, Domains: []string{sipDomain}, NextHop: "sip:" + uasAddr + ";transport=udp"},
			// Presence: SUBSCRIBEs for XMPP users and in-dialog requests to the
			// gateway's Contact go to xgw; NOTIFYs for alice's watcher go to it.
			{Methods: []string{"SUBSCRIBE"}, Domains: []string{xmppDomain}, NextHop: "sip:" + gatewayIP + ":5061;transport=tls"},
			{Methods: []string{"SUBSCRIBE", "NOTIFY"}, Domains: []string{internal}, NextHop: "sip:" + gatewayIP + ":5061;transport=tls"},
			{Methods: []string{"NOTIFY"}, Domains: []string{strings.Split(watchAddr, ":")[0]}, NextHop: "sip:" + watchAddr + ";transport=udp"},
		},
	})
	uas := lab.StartSippUAS(t, filepath.Join(scenarios, "uas.xml"), uasAddr)

	step("Prosody for %s on %s with user bob", xmppDomain, prosodyIP)
	prosody := lab.StartProsody(t, lab.ProsodyConfig{Domain: xmppDomain, Addr: prosodyIP, Users: map[string]string{"bob": "bob-pw"}})
	bob := lab.Login(t, ctx, prosody.C2SAddr, prosody.JID("bob"), "bob-pw")
	// Prosody delivers subscription requests only to resources that asked
	// for the roster (RFC 6121).
	if err := bob.RequestRoster(ctx); err != nil {
		t.Fatal(err)
	}

	step("xgw check")
	out, code := run(ctx, t, xgw, "check", "-c", cfg, "--no-color")
	t.Logf("\n%s", out)
	if code != 0 {
		t.Fatalf("xgw check exited %d, want 0", code)
	}
	jsonOut, _ := run(ctx, t, xgw, "check", "-c", cfg, "-o", "json")
	var rep struct {
		Results []struct{ ID, Target, Status, Found string }
	}
	if err := json.Unmarshal([]byte(jsonOut), &rep); err != nil {
		t.Fatalf("xgw check -o json: %v\n%s", err, jsonOut)
	}
	for _, r := range rep.Results {
		green := r.Status == "pass" ||
			(r.ID == "xmpp.peer" && r.Status == "skip") || // opt-in: leaves the LAN
			(r.ID == "fqdn" && r.Target == "dns-suffix" && r.Status == "warn") // this machine's own host name
		if !green {
			t.Errorf("xgw check: %s [%s] is %s: %s", r.ID, r.Target, r.Status, r.Found)
		}
	}

	step("xgw serve")
	srv := startServe(t, xgw, cfg, filepath.Join(dir, "state"))

	xmppText := "Grüße von bob — こんにちは, привет, مرحبا 👋"
	step("XMPP -> SIP: bob@%s sends %q to alice@%s", xmppDomain, xmppText, sipDomain)
	if err := bob.SendMessage(ctx, "alice@"+sipDomain, xmppText); err != nil {
		t.Fatal(err)
	}
	got, err := uas.WaitRequest(ctx, "MESSAGE", "alice@"+sipDomain)
	if err != nil {
		t.Fatalf("%v\n--- xgw serve log\n%s\n--- Kamailio\n%s", err, srv.log(), kam.LogTail(30))
	}
	body, _, err := lab.SIPBody(got)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the SIP user agent (sipp UAS) received:\n%s", got)
	if body != xmppText {
		t.Errorf("SIP body = %q, want %q byte for byte", body, xmppText)
	}

	sipText := "Hello from alice — 你好, Ελληνικά, עברית 🎉"
	step("SIP -> XMPP: alice@%s sends %q to bob@%s through the Edge", sipDomain, sipText, xmppDomain)
	if _, err := lab.RunSippUAC(t, ctx, filepath.Join(scenarios, "uac-message.xml"), uacAddr, edgeIP+":5060",
		"to", "bob@"+xmppDomain, "body", sipText); err != nil {
		t.Fatalf("%v\n--- xgw serve log\n%s", err, srv.log())
	}
	msg, err := bob.WaitFor(ctx, lab.MessageFrom("alice@"+sipDomain))
	if err != nil {
		t.Fatalf("bob got no message from alice: %v\n--- xgw serve log\n%s", err, srv.log())
	}
	t.Logf("bob (Prosody) received: %s", msg.Raw)
	// sipp ends the body with CRLF; the text itself must arrive unchanged.
	if strings.TrimRight(msg.Body, "\r\n") != sipText {
		t.Errorf("XMPP body = %q, want %q", msg.Body, sipText)
	}

	step("presence: alice@%s subscribes to bob@%s through the Edge; bob approves", sipDomain, xmppDomain)
	watcher := lab.StartSipp(t, filepath.Join(scenarios, "uac-subscribe.xml"), watchAddr, "-m", "1", "-aa", "-key", "to", "bob@"+xmppDomain, edgeIP+":5060")
	if _, err := bob.WaitFor(ctx, func(s lab.Stanza) bool {
		return s.Name == "presence" && s.Type == "subscribe" && strings.HasPrefix(s.From, "alice@"+sipDomain)
	}); err != nil {
		t.Fatalf("bob got no subscription request from alice: %v\n--- xgw serve log\n%s", err, srv.log())
	}
	if err := bob.SendPresence(ctx, "alice@"+sipDomain, "subscribed"); err != nil {
		t.Fatal(err)
	}
	if _, err := watcher.WaitRequest(ctx, "NOTIFY", "Subscription-State: active"); err != nil {
		t.Fatalf("%v\n--- xgw serve log\n%s", err, srv.log())
	}
	status := "Mittagspause — 昼休み 🍜"
	step("presence: bob goes away with status %q", status)
	if err := bob.SendStatus(ctx, "away", status); err != nil {
		t.Fatal(err)
	}
	notify, err := watcher.WaitRequest(ctx, "NOTIFY", "<rpid:away/>", status)
	if err != nil {
		t.Fatalf("%v\n--- xgw serve log\n%s", err, srv.log())
	}
	t.Logf("alice's presence watcher (sipp) received:\n%s", notify)

	step("stopping xgw serve (SIGTERM)")
	if code := srv.stop(t); code != 0 {
		t.Errorf("xgw serve exited %d after SIGTERM, want 0\n%s", code, srv.log())
	}
}

func write(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// run runs xgw and returns its stdout and exit code.
func run(ctx context.Context, t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			if stderr.Len() > 0 {
				t.Logf("xgw %s stderr:\n%s", args[0], stderr.String())
			}
			return string(out), ee.ExitCode()
		}
		t.Fatalf("xgw %v: %v", args, err)
	}
	return string(out), 0
}

// serveProc is a running `xgw serve`.
type serveProc struct {
	cmd    *exec.Cmd
	out    *lab.LogBuffer
	exited chan struct{}
}

func startServe(t *testing.T, bin, cfg, stateDir string) *serveProc {
	t.Helper()
	p := &serveProc{out: &lab.LogBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "serve", "-c", cfg, "--state-dir", stateDir, "--log-format", "text", "--no-color")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	// Serve runs the checks first (their probes listen on the same ports for
	// a moment), so wait for its own "serving" line, not for an open port.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.log(), "gateway serving") {
		select {
		case <-p.exited:
			t.Fatalf("xgw serve exited early (%v):\n%s", p.cmd.ProcessState, p.log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("xgw serve did not start in 30s:\n%s", p.log())
		}
	}
	return p
}

func (p *serveProc) log() string { return p.out.String() }

// stop sends SIGTERM and returns the exit code.
func (p *serveProc) stop(t *testing.T) int {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("xgw serve still running 20s after SIGTERM:\n%s", p.log())
	}
	fmt.Fprint(testWriter{t}, p.log())
	return p.cmd.ProcessState.ExitCode()
}

// testWriter shows the gateway's log in the test output.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("xgw serve log:\n%s", p)
	return len(p), nil
}
