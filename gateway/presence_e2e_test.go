package gateway_test

// Presence end to end, inside the test namespace (bash scripts/test.sh ./gateway/):
//
//	sipp UAC alice 127.0.3.4 --udp--> Kamailio 127.0.2.10:5060 --mTLS--> xgw 127.0.1.20:5061 <--s2s--> Prosody xmpp.test (bob)
//	sipp UAS carol 127.0.3.3 <--udp-- Kamailio <--mTLS-- xgw
//
// Kamailio routes on the Request-URI's host only (no Record-Route), so
// in-dialog requests have routes of their own: the gateway's Contact host
// (xmpp.internal_fqdn) and the SIP users' Contact addresses.

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
	presenceUASIP = "127.0.3.3" // carol, a presence notifier
	presenceUACIP = "127.0.3.4" // alice, a presence watcher
	// carolStatus is the note of carol's PIDF (sipp -key status).
	carolStatus = "Im Meeting — 会議中 📅"
)

type presenceE2E struct {
	t        *testing.T // the top-level test, which outlives restarts
	cfg      *config.Config
	stateDir string
	gwLog    *lab.LogBuffer
	bob      *lab.Client
	prosody  *lab.Prosody
	kamailio *lab.Kamailio
	stopGW   func()
}

func startPresenceE2E(t *testing.T, ctx context.Context) *presenceE2E {
	t.Helper()
	testenv.Netns(t)
	p := &presenceE2E{t: t, gwLog: &lab.LogBuffer{}, stateDir: t.TempDir()}
	lab.DNS53(t, lab.ServerZone(xmppDomain, prosodyIP), lab.ServerZone(sipDomain, gatewayIP))

	ca := certtest.NewCA(t, "Litware presence E2E CA")
	dir := t.TempDir()
	gw := ca.Issue(t, certtest.Leaf{CN: e2eInternal, DNSNames: []string{e2eInternal, sipDomain},
		IPs: []net.IP{net.ParseIP(gatewayIP)}, ECDSA: true})
	gw.WriteFiles(t, dir, ca)
	edge := ca.Issue(t, certtest.Leaf{CN: "edge.litware.test", DNSNames: []string{"edge.litware.test"},
		IPs: []net.IP{net.ParseIP(edgeIP)}, ECDSA: true})
	edgeCert, edgeKey, caFile := edge.WriteFiles(t, t.TempDir(), ca)
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	toGateway := "sip:" + gatewayIP + ":5061;transport=tls"
	p.kamailio = lab.StartKamailio(t, lab.KamailioConfig{
		Addr: edgeIP + ":5061", CertFile: edgeCert, KeyFile: edgeKey, CAFile: caFile, RequireClientCert: true,
		Listen: []string{"udp:" + edgeIP + ":5060"},
		Routes: []lab.KamailioRoute{
			{Methods: []string{"SUBSCRIBE"}, Domains: []string{xmppDomain}, NextHop: toGateway},
			{Methods: []string{"SUBSCRIBE", "NOTIFY"}, Domains: []string{e2eInternal}, NextHop: toGateway},
			{Methods: []string{"SUBSCRIBE"}, Domains: []string{sipDomain, presenceUASIP}, NextHop: "sip:" + presenceUASIP + ":5060;transport=udp"},
			{Methods: []string{"NOTIFY"}, Domains: []string{presenceUACIP}, NextHop: "sip:" + presenceUACIP + ":5060;transport=udp"},
		},
	})
	p.prosody = lab.StartProsody(t, lab.ProsodyConfig{Domain: xmppDomain, Addr: prosodyIP, Users: map[string]string{"bob": "bob-pw"}})

	cfgPath := filepath.Join(dir, "xgw.yaml")
	yaml := fmt.Sprintf(`sip:
  domains: [%s]
  listen: %s:5061
  edge: {host: %s, port: 5061, transport: tls}
xmpp:
  listen: %s:5269
  internal_fqdn: %s
  external_fqdn: %s
  federation:
    - {domain: %s, auth: dialback}
tls: {cert: cert.pem, key: key.pem, ca: ca.pem}
checks: {dns_server: "%s"}
`, sipDomain, gatewayIP, edgeIP, gatewayIP, e2eInternal, sipDomain, xmppDomain, lab.DNSAddr)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if p.cfg, err = config.LoadFile(cfgPath); err != nil {
		t.Fatal(err)
	}
	p.startGateway()
	t.Cleanup(func() {
		p.stopGW()
		if t.Failed() {
			t.Logf("gateway log:\n%s", p.gwLog.String())
			t.Logf("kamailio log:\n%s", p.kamailio.LogTail(60))
			var lines []string
			for _, l := range strings.Split(p.prosody.Log(), "\n") {
				if strings.Contains(l, "litware.test") && strings.Contains(l, "presence") {
					lines = append(lines, l)
				}
			}
			t.Logf("prosody log, presence from and to litware.test:\n%s", strings.Join(lines, "\n"))
		}
	})
	p.bob = lab.Login(t, ctx, p.prosody.C2SAddr, p.prosody.JID("bob"), "bob-pw")
	if err := p.bob.RequestRoster(ctx); err != nil {
		t.Fatal(err)
	}
	return p
}

// startGateway serves the gateway on p's state directory until stopGW.
func (p *presenceE2E) startGateway() {
	t := p.t
	t.Helper()
	srv, err := gateway.New(p.cfg, gateway.WithLogger(slog.New(slog.NewTextHandler(p.gwLog, nil))), gateway.WithStateDir(p.stateDir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	p.stopGW = func() {
		stop()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Serve did not return 15 s after its context ended")
		}
		p.stopGW = func() {}
	}
	waitDial(t, gatewayIP+":5269")
}

// startSipp runs a sipp scenario in the background until the top-level
// test ends (stopped by its PID).
func (p *presenceE2E) startSipp(scenario, ip string, args ...string) *lab.Sipp {
	p.t.Helper()
	return lab.StartSipp(p.t, filepath.Join("testdata", "sipp", scenario), ip+":5060", append([]string{"-m", "1"}, args...)...)
}

// sippReceived waits until sipp has received a request of method that
// contains every substring, and returns it.
func sippReceived(t *testing.T, s *lab.Sipp, method string, subs ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := s.WaitRequest(ctx, method, subs...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sipHeaderValue(m, name string) string {
	head, _, _ := strings.Cut(m, "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestEndToEndPresence(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	p := startPresenceE2E(t, ctx)
	// The gateway stops before the peers do: a NOTIFY to a stopped sipp
	// would hold the drain.
	defer func() { p.stopGW() }()
	bob := p.bob.JID.Bare().String()
	const alice, carol = "alice@" + sipDomain, "carol@" + sipDomain

	wait := func(t *testing.T, what string, match func(lab.Stanza) bool) lab.Stanza {
		t.Helper()
		wctx, c := context.WithTimeout(ctx, 30*time.Second)
		defer c()
		st, err := p.bob.WaitFor(wctx, match)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return st
	}
	presenceFrom := func(from, typ string) func(lab.Stanza) bool {
		return func(s lab.Stanza) bool {
			return s.Name == "presence" && s.Type == typ && strings.SplitN(s.From, "/", 2)[0] == from
		}
	}

	t.Run("XMPP user subscribes to a SIP user", func(t *testing.T) {
		uas := p.startSipp("uas-presence.xml", presenceUASIP, "-key", "status", carolStatus, "-key", "activity", "meeting")
		if err := p.bob.Subscribe(ctx, carol); err != nil {
			t.Fatal(err)
		}
		sub := sippReceived(t, uas, "SUBSCRIBE", "Event: presence")
		if from := sipHeaderValue(sub, "From"); !strings.Contains(from, "<sip:"+bob+">") {
			t.Errorf("SUBSCRIBE From %q, want sip:%s", from, bob)
		}
		if a := sipHeaderValue(sub, "Accept"); a != "application/pidf+xml" {
			t.Errorf("SUBSCRIBE Accept %q", a)
		}
		wait(t, "bob's subscribed", presenceFrom(carol, "subscribed"))
		got := wait(t, "carol's presence", presenceFrom(carol, ""))
		if !strings.Contains(got.Raw, ">dnd</show>") || !strings.Contains(got.Raw, ">"+carolStatus+"</status>") {
			t.Errorf("bob got %s, want show dnd and status %q", got.Raw, carolStatus)
		}
	})

	var uac *lab.Sipp
	var firstNotify string
	t.Run("SIP user subscribes to the XMPP user, who approves", func(t *testing.T) {
		uac = p.startSipp("uac-subscribe.xml", presenceUACIP, "-aa", "-key", "to", bob, edgeIP+":5060")
		wait(t, "bob's subscription request", presenceFrom(alice, "subscribe"))
		sippReceived(t, uac, "NOTIFY", "Subscription-State: pending")
		if err := p.bob.SendPresence(ctx, alice, "subscribed"); err != nil {
			t.Fatal(err)
		}
		firstNotify = sippReceived(t, uac, "NOTIFY", "Subscription-State: active", "<basic>open</basic>")
		if ct := sipHeaderValue(firstNotify, "Content-Type"); ct != "application/pidf+xml" {
			t.Errorf("NOTIFY Content-Type %q", ct)
		}
	})
	if uac == nil || firstNotify == "" {
		t.Fatal("no subscription from the SIP side to carry on with")
	}

	t.Run("status change reaches the SIP subscriber byte for byte", func(t *testing.T) {
		const status = "Обед 🍜 — 昼休み e\u0301 مرحبا"
		if err := p.bob.SendStatus(ctx, "away", status); err != nil {
			t.Fatal(err)
		}
		n := sippReceived(t, uac, "NOTIFY", "<rpid:away/>")
		body, cl := sipBody(t, n)
		if !strings.Contains(body, ">"+status+"</note>") || cl != len(body) {
			t.Errorf("NOTIFY body (Content-Length %d, %d bytes):\n%s\nwant the note %q byte for byte", cl, len(body), body, status)
		}
	})

	t.Run("restart keeps the subscription", func(t *testing.T) {
		p.stopGW()
		p.startGateway()
		const status = "после перезапуска ✓"
		if err := p.bob.SendStatus(ctx, "dnd", status); err != nil {
			t.Fatal(err)
		}
		n := sippReceived(t, uac, "NOTIFY", "<rpid:busy/>", status)
		if got, want := sipHeaderValue(n, "Call-ID"), sipHeaderValue(firstNotify, "Call-ID"); got != want {
			t.Errorf("NOTIFY after the restart in dialog %q, want %q", got, want)
		}
	})
}
