package gateway_test

// End to end, inside the test namespace (bash scripts/test.sh ./gateway/):
//
//	sipp UAC 127.0.3.2 --udp--> Kamailio (the Edge) 127.0.2.10:5060/5061 --mTLS--> xgw 127.0.1.20:5061
//	                                                                              xgw 127.0.1.20:5269 <--s2s--> Prosody xmpp.test 127.0.1.1
//	sipp UAS 127.0.3.1:5060 <--udp-- Kamailio <--mTLS-- xgw
//
// xgw runs in-process; every other part is the real third-party program.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway"
	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/certtest"
	"github.com/xgw-gateway/xgw/internal/lab"
	"github.com/xgw-gateway/xgw/internal/testenv"
)

const (
	xmppDomain  = "xmpp.test"
	prosodyIP   = "127.0.1.1"
	sipDomain   = "litware.test"
	sipDomain2  = "college.litware.test" // served, but the Edge routes nobody there
	goneDomain  = "gone.test"            // an allowed partner without DNS records
	gatewayIP   = "127.0.1.20"
	edgeIP      = "127.0.2.10"
	uasIP       = "127.0.3.1"
	uacIP       = "127.0.3.2"
	e2eInternal = "xgw-int.litware.test"
)

// Unicode cases: each must arrive byte for byte.
var texts = []struct{ name, text string }{
	{"CJK", "漢字かな交じり文、한국어 텍스트"},
	{"Cyrillic", "Привет, мир! Съешь же ещё этих мягких французских булок"},
	{"Arabic RTL", "مرحبا بالعالم، كيف حالك؟"},
	{"combining marks", "e\u0301 n\u0303 a\u030a\u0323 Z\u0351\u0307\u0310"},
	{"astral emoji", "😀🎉 𝄞 👩🏽‍💻 🇯🇵"},
}

// e2e is the running lab.
type e2e struct {
	bob      *lab.Client
	uas      *lab.Sipp
	gwLog    *lab.LogBuffer
	prosody  *lab.Prosody
	kamailio *lab.Kamailio
}

func startE2E(t *testing.T, ctx context.Context) *e2e {
	t.Helper()
	testenv.Netns(t)
	testenv.Binary(t, "sipp")
	lab.DNS53(t, lab.ServerZone(xmppDomain, prosodyIP), lab.ServerZone(sipDomain, gatewayIP), lab.ServerZone(sipDomain2, gatewayIP))

	ca := certtest.NewCA(t, "Litware E2E CA")
	dir := t.TempDir()
	gw := ca.Issue(t, certtest.Leaf{CN: e2eInternal, DNSNames: []string{e2eInternal, sipDomain, sipDomain2},
		IPs: []net.IP{net.ParseIP(gatewayIP)}, ECDSA: true})
	gw.WriteFiles(t, dir, ca)
	edge := ca.Issue(t, certtest.Leaf{CN: "edge.litware.test", DNSNames: []string{"edge.litware.test"},
		IPs: []net.IP{net.ParseIP(edgeIP)}, ECDSA: true})
	edgeCert, edgeKey, caFile := edge.WriteFiles(t, t.TempDir(), ca)
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	e := &e2e{gwLog: &lab.LogBuffer{}}
	e.kamailio = lab.StartKamailio(t, lab.KamailioConfig{
		Addr: edgeIP + ":5061", CertFile: edgeCert, KeyFile: edgeKey, CAFile: caFile, RequireClientCert: true,
		Listen: []string{"udp:" + edgeIP + ":5060"},
		Routes: []lab.KamailioRoute{
			{Methods: []string{"MESSAGE"}, Domains: []string{xmppDomain, goneDomain}, NextHop: "sip:" + gatewayIP + ":5061;transport=tls"},
			{Methods: []string{"MESSAGE"}, Domains: []string{sipDomain}, NextHop: "sip:" + uasIP + ":5060;transport=udp"},
		},
	})
	e.prosody = lab.StartProsody(t, lab.ProsodyConfig{Domain: xmppDomain, Addr: prosodyIP, Users: map[string]string{"bob": "bob-pw"}})

	cfgPath := filepath.Join(dir, "xgw.yaml")
	yaml := fmt.Sprintf(`sip:
  domains: [%s, %s]
  listen: %s:5061
  edge: {host: %s, port: 5061, transport: tls}
xmpp:
  listen: %s:5269
  internal_fqdn: %s
  external_fqdn: %s
  federation:
    - {domain: %s, auth: dialback}
    - {domain: %s, auth: dialback}
tls: {cert: cert.pem, key: key.pem, ca: ca.pem}
checks: {dns_server: "%s"}
`, sipDomain, sipDomain2, gatewayIP, edgeIP, gatewayIP, e2eInternal, sipDomain, xmppDomain, goneDomain, lab.DNSAddr)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(cfg, gateway.WithLogger(slog.New(slog.NewTextHandler(e.gwLog, nil))), gateway.WithStateDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Serve did not return 15 s after its context ended")
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", e.gwLog.String())
			t.Logf("kamailio log:\n%s", e.kamailio.LogTail(40))
			t.Logf("prosody log:\n%s", e.prosody.LogTail(40))
		}
	})
	waitDial(t, gatewayIP+":5269")

	e.uas = lab.StartSippUAS(t, "testdata/sipp/uas.xml", uasIP+":5060")
	e.bob = lab.Login(t, ctx, e.prosody.C2SAddr, e.prosody.JID("bob"), "bob-pw")
	return e
}

func waitDial(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("nothing listens on %s", addr)
}

// runUAC runs one sipp UAC scenario through the Edge's UDP socket and
// returns the first request it sent, as sent.
func (e *e2e) runUAC(t *testing.T, scenario, to string, keys ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := lab.RunSippUAC(t, ctx, filepath.Join("testdata/sipp", scenario), uacIP+":5060", edgeIP+":5060",
		append([]string{"to", to}, keys...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// uasMessage waits for a MESSAGE at the UAS containing every substring.
func (e *e2e) uasMessage(t *testing.T, subs ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := e.uas.WaitRequest(ctx, "MESSAGE", subs...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sipBody(t *testing.T, m string) (string, int) {
	t.Helper()
	body, n, err := lab.SIPBody(m)
	if err != nil {
		t.Fatal(err)
	}
	return body, n
}

func TestEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := startE2E(t, ctx)
	alice := "alice@" + sipDomain
	bob := e.bob.JID.Bare().String()

	wait := func(t *testing.T, what string, match func(lab.Stanza) bool) lab.Stanza {
		t.Helper()
		wctx, c := context.WithTimeout(ctx, 20*time.Second)
		defer c()
		st, err := e.bob.WaitFor(wctx, match)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return st
	}

	for _, tc := range texts {
		t.Run("SIP to XMPP/"+tc.name, func(t *testing.T) {
			sent, _ := sipBody(t, e.runUAC(t, "uac-message.xml", bob, "body", tc.text))
			if strings.TrimRight(sent, "\r\n") != tc.text {
				t.Fatalf("sipp sent body %q, want %q and a line end", sent, tc.text)
			}
			got := wait(t, "bob's message", lab.MessageFrom(alice))
			// sipp ends the body with CRLF. The gateway escapes the CR
			// (&#xD;), but Prosody re-serialises it as a raw CR, which
			// the client's XML parser turns into LF (XML 1.0 §2.11); every
			// other byte arrives as sent.
			if want := strings.ReplaceAll(sent, "\r\n", "\n"); got.Body != want {
				t.Errorf("bob got body %q (% x), want %q", got.Body, got.Body, want)
			}
		})
	}
	for _, tc := range texts {
		t.Run("XMPP to SIP/"+tc.name, func(t *testing.T) {
			if err := e.bob.SendMessage(ctx, alice, tc.text); err != nil {
				t.Fatal(err)
			}
			m := e.uasMessage(t, "MESSAGE sip:"+alice, tc.text)
			body, n := sipBody(t, m)
			if body != tc.text || n != len(tc.text) {
				t.Errorf("UAS got body %q with Content-Length %d, want %q (%d bytes)", body, n, tc.text, len(tc.text))
			}
			if !strings.Contains(m, "text/plain;charset=UTF-8") {
				t.Errorf("MESSAGE without UTF-8 text/plain Content-Type:\n%s", m)
			}
		})
	}
	t.Run("typing SIP to XMPP", func(t *testing.T) {
		e.runUAC(t, "uac-iscomposing.xml", bob)
		got := wait(t, "bob's chat state", func(s lab.Stanza) bool {
			return s.Name == "message" && s.Body == "" && strings.Contains(s.Raw, "composing") &&
				strings.Contains(s.Raw, "http://jabber.org/protocol/chatstates")
		})
		t.Logf("bob got %s", got.Raw)
	})
	t.Run("typing XMPP to SIP", func(t *testing.T) {
		if err := e.bob.SendChatState(ctx, alice, "composing"); err != nil {
			t.Fatal(err)
		}
		m := e.uasMessage(t, "application/im-iscomposing+xml", "<state>active</state>")
		if !strings.Contains(m, "From: <sip:"+bob+">") {
			t.Errorf("isComposing not from bob:\n%s", m)
		}
		if err := e.bob.SendChatState(ctx, alice, "paused"); err != nil {
			t.Fatal(err)
		}
		e.uasMessage(t, "application/im-iscomposing+xml", "<state>idle</state>")
	})
	t.Run("bounce XMPP to unknown SIP user", func(t *testing.T) {
		// The Edge has no route for college.litware.test: Kamailio answers
		// 404, which RFC 7247 §6.2 maps to item-not-found.
		if err := e.bob.SendMessage(ctx, "nobody@"+sipDomain2, "anyone there?"); err != nil {
			t.Fatal(err)
		}
		got := wait(t, "bob's bounce", func(s lab.Stanza) bool {
			return s.Name == "message" && s.Type == "error" && strings.Contains(s.From, "nobody@"+sipDomain2)
		})
		if !strings.Contains(got.Raw, "item-not-found") || !strings.Contains(got.Raw, "404") {
			t.Errorf("bounce %s, want item-not-found naming the 404", got.Raw)
		}
	})
	t.Run("bounce SIP to unreachable XMPP domain", func(t *testing.T) {
		// Accepted (200) while the stream is set up; the pool then finds no
		// server for gone.test and the sender is told by MESSAGE.
		e.runUAC(t, "uac-message.xml", "carol@"+goneDomain, "body", "are you there?")
		m := e.uasMessage(t, "From: <sip:carol@"+goneDomain+">", "remote-server-not-found")
		body, _ := sipBody(t, m)
		if !strings.Contains(body, "not delivered") || !strings.Contains(body, "> are you there?") {
			t.Errorf("notice body %q", body)
		}
	})
	t.Run("bounce SIP to unknown XMPP user", func(t *testing.T) {
		// Prosody answers service-unavailable for a user it does not have
		// (RFC 6120 §10.5.3.1 for a message to a bare JID without an account).
		e.runUAC(t, "uac-message.xml", "nobody@"+xmppDomain, "body", "hello nobody")
		m := e.uasMessage(t, "From: <sip:nobody@"+xmppDomain+">", "not delivered")
		t.Logf("notice:\n%s", m)
	})
}
