package gateway_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xgw-gateway/xgw/gateway"
	"github.com/xgw-gateway/xgw/gateway/config"
	gwsip "github.com/xgw-gateway/xgw/gateway/sip"
	"github.com/xgw-gateway/xgw/gateway/xmpp"
	"github.com/xgw-gateway/xgw/internal/certtest"
	"github.com/xgw-gateway/xgw/internal/resolve"
)

// liveStreams lists the authenticated s2s streams by direction and peer
// address: a stream that was closed and re-opened changes its address.
func liveStreams(srv *gateway.Server) []string {
	var out []string
	for _, si := range srv.Streams() {
		if len(si.Authenticated) > 0 {
			out = append(out, si.Direction+" "+si.Remote+" "+si.Peer)
		}
	}
	slices.Sort(out)
	return out
}

// A reload keeps the partner's streams and the SIP subscription dialog;
// a partner denied by it is refused on its next new stream.
func TestReloadKeepsStreamsAndDialogs(t *testing.T) {
	l := startPresenceLoop(t)
	const carol, alice = "carol@peer.test", "alice@litware.test"

	// A SIP subscription to carol: a dialog, and streams both ways.
	_, res := l.subscribe(t, carol, 600)
	if res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE answered %d", res.StatusCode)
	}
	l.stanza(t, "subscribe at the peer", "subscribe", alice)
	recv(t, l.notifyIn, "pending NOTIFY")
	l.presence(t, carol, alice, "subscribed", "")
	if n := recv(t, l.notifyIn, "active NOTIFY"); !strings.HasPrefix(subState(n), "active") {
		t.Fatalf("NOTIFY %q, want active", subState(n))
	}
	streams := liveStreams(l.srv)
	if len(streams) != 2 || l.srv.MetricSubscriptions() != 1 {
		t.Fatalf("before the reload: streams %v, %d subscriptions; want in and out, 1", streams, l.srv.MetricSubscriptions())
	}

	t.Run("allow list changed: streams and dialog stay", func(t *testing.T) {
		nc := *l.cfg
		nc.XMPP.Federation = append(slices.Clone(l.cfg.XMPP.Federation), config.Partner{Domain: "new.test", Auth: config.AuthDialback})
		nc.XMPP.Listen = "127.0.0.1:1" // cannot change live
		restart, err := l.srv.Reload(&nc)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(restart, []string{"xmpp.listen"}) {
			t.Errorf("restart needed for %v, want [xmpp.listen]", restart)
		}
		// Traffic on the same streams, both ways, and on the dialog.
		l.presence(t, carol+"/desk", alice, "", "<show>away</show><status>after reload</status>")
		if n := recv(t, l.notifyIn, "NOTIFY after the reload"); !strings.Contains(string(n.Body()), "after reload") {
			t.Errorf("NOTIFY body %s", n.Body())
		}
		if got := liveStreams(l.srv); !slices.Equal(got, streams) {
			t.Errorf("streams after the reload %v, want the same %v", got, streams)
		}
		if l.srv.MetricSubscriptions() != 1 {
			t.Errorf("%d subscriptions after the reload, want 1", l.srv.MetricSubscriptions())
		}
		if !strings.Contains(l.logs.String(), `msg="config reload: restart needed to apply a change" key=xmpp.listen`) {
			t.Errorf("no restart-needed log line for xmpp.listen")
		}
	})

	t.Run("bad allow list refused, old rules stay", func(t *testing.T) {
		nc := *l.cfg
		nc.XMPP.Federation = []config.Partner{{Domain: "litware.test", Auth: config.AuthDialback}}
		if _, err := l.srv.Reload(&nc); err == nil || !strings.Contains(err.Error(), "one of our own domains") {
			t.Errorf("err = %v, want a refusal naming our own domain", err)
		}
		l.presence(t, carol+"/desk", alice, "", "<status>still allowed</status>")
		recv(t, l.notifyIn, "NOTIFY after the refused reload")
	})

	t.Run("denied partner: live streams stay, a new stream is refused", func(t *testing.T) {
		nc := *l.cfg
		nc.XMPP.Deny = []string{"peer.test"}
		if _, err := l.srv.Reload(&nc); err != nil {
			t.Fatal(err)
		}
		if got := liveStreams(l.srv); !slices.Equal(got, streams) {
			t.Errorf("streams after denying %v, want them kept %v", got, streams)
		}
		// A second server for peer.test opens a new stream to us.
		res, err := resolve.New(l.dnsAddr)
		if err != nil {
			t.Fatal(err)
		}
		bounced := make(chan *xmpp.Stanza, 1)
		peer2, err := xmpp.New(xmpp.Config{Domains: []string{"peer.test"}, Resolver: res,
			Federation: []config.Partner{{Domain: "litware.test", Auth: config.AuthDialback}},
			Handler: xmpp.HandlerFunc(func(_ context.Context, st *xmpp.Stanza) error {
				bounced <- st
				return nil
			})})
		if err != nil {
			t.Fatal(err)
		}
		defer peer2.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st := &xmpp.Stanza{Name: "message", From: jid.MustParse("dave@peer.test"), To: jid.MustParse(alice), Type: "chat", ID: "d1", Inner: []byte("<body>hi</body>")}
		if err := peer2.Send(ctx, st); err != nil {
			t.Fatal(err)
		}
		if b := recv(t, bounced, "bounce at the second peer"); b.Type != "error" {
			t.Errorf("second peer got %s, want its message bounced", b)
		}
		if !strings.Contains(l.logs.String(), "domain peer.test is in xmpp.deny") {
			t.Errorf("the refusal does not name xmpp.deny:\n%s", l.logs.String())
		}
		if got := liveStreams(l.srv); !slices.Equal(got, streams) {
			t.Errorf("streams after the refused one %v, want %v", got, streams)
		}
	})
}

// A reload's certificate serves the next TLS handshake; a TLS stream
// opened before it stays usable.
func TestReloadCertificate(t *testing.T) {
	ca := certtest.NewCA(t, "Reload CA")
	leaf := certtest.Leaf{CN: "xgw-int.litware.test", DNSNames: []string{"xgw-int.litware.test", "litware.test"}, ECDSA: true}
	dir1, dir2 := t.TempDir(), t.TempDir()
	old, renewed := ca.Issue(t, leaf), ca.Issue(t, leaf)
	old.WriteFiles(t, dir1, nil)
	renewed.WriteFiles(t, dir2, nil)

	cfg := &config.Config{File: filepath.Join(dir1, "xgw.yaml"),
		SIP:  config.SIP{Domains: []string{"litware.test"}, Edge: config.Edge{Host: "127.0.0.1", Port: 9, Transport: "tcp"}},
		XMPP: config.XMPP{Federation: []config.Partner{{Domain: "peer.test", Auth: config.AuthDialback}}},
		TLS:  config.TLS{Cert: "cert.pem", Key: "key.pem"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(cfg, gateway.WithXMPPListener(ln), gateway.WithSIPListen("127.0.0.1:0"),
		gateway.WithSIPConfig(func(c *gwsip.Config) { c.KeepaliveInterval = -1 }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() { stop(); <-served })

	first, leaf1 := startTLS(t, ln.Addr().String())
	defer first.Close()
	if !leaf1.Equal(old.Cert) {
		t.Fatalf("first handshake served serial %s, want the old certificate's %s", leaf1.SerialNumber, old.Cert.SerialNumber)
	}
	nc := *cfg
	nc.File = filepath.Join(dir2, "xgw.yaml")
	if restart, err := srv.Reload(&nc); err != nil || len(restart) != 0 {
		t.Fatalf("Reload = %v, %v; want no error and nothing to restart", restart, err)
	}
	second, leaf2 := startTLS(t, ln.Addr().String())
	defer second.Close()
	if !leaf2.Equal(renewed.Cert) {
		t.Errorf("handshake after the reload served serial %s, want the new certificate's %s", leaf2.SerialNumber, renewed.Cert.SerialNumber)
	}
	// The stream opened before the reload still answers (RFC 6120 §5.4.3.3:
	// the stream restarts over TLS).
	first.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(first, streamHeader)
	if _, err := readUntil(bufio.NewReader(first), "</stream:features>"); err != nil {
		t.Errorf("the TLS stream opened before the reload does not answer: %v", err)
	}
}

const streamHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='litware.test' from='peer.test' version='1.0'>`

// startTLS opens a stream to the gateway, negotiates STARTTLS and returns
// the TLS connection with the certificate the gateway presented.
func startTLS(t *testing.T, addr string) (*tls.Conn, *x509.Certificate) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	fmt.Fprint(conn, streamHeader)
	if got, err := readUntil(r, "</stream:features>"); err != nil || !strings.Contains(got, "<starttls") {
		t.Fatalf("features %q (%v), want STARTTLS offered", got, err)
	}
	fmt.Fprint(conn, `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	if _, err := readUntil(r, "<proceed"); err != nil {
		t.Fatal(err)
	}
	if _, err := readUntil(r, ">"); err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(conn, &tls.Config{ServerName: "litware.test", InsecureSkipVerify: true}) // checked by the caller
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	return tc, tc.ConnectionState().PeerCertificates[0]
}

// readUntil reads until marker, at most 64 KiB.
func readUntil(r *bufio.Reader, marker string) (string, error) {
	var b strings.Builder
	for b.Len() < 64<<10 {
		c, err := r.ReadByte()
		if err != nil {
			return b.String(), err
		}
		b.WriteByte(c)
		if strings.HasSuffix(b.String(), marker) {
			return b.String(), nil
		}
	}
	return b.String(), fmt.Errorf("no %q in the first 64 KiB", marker)
}
