package checks

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/certtest"
)

// freePort returns a port that was free on host a moment ago.
func freePort(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// holdPort listens on loopback and runs serve on every connection until
// the test ends; serve nil accepts nothing, as a busy or hung daemon.
func holdPort(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if serve != nil {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					c.SetDeadline(time.Now().Add(5 * time.Second))
					serve(c)
				}()
			}
		}()
	}
	return ln.Addr().String()
}

// answerStream reads the prober's stream header and answers as an XMPP
// server for domain would (RFC 6120 §4.7.1).
func answerStream(domain string) func(net.Conn) {
	return func(c net.Conn) {
		buf := make([]byte, 512)
		if _, err := c.Read(buf); err != nil {
			return
		}
		io.WriteString(c, `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' from='`+
			domain+`' id='b1' version='1.0'><stream:features/>`)
		io.Copy(io.Discard, c)
	}
}

// serveTLS completes TLS handshakes with the given certificate.
func serveTLS(cert tls.Certificate) func(net.Conn) {
	return func(c net.Conn) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		tc.Handshake()
	}
}

func TestBindChecks(t *testing.T) {
	ca := certtest.NewCA(t, "Litware Private CA")
	ours := ca.Issue(t, certtest.Leaf{CN: "xgw-int.litware.test", DNSNames: []string{"xgw-int.litware.test"}, ECDSA: true})
	theirs := ca.Issue(t, certtest.Leaf{CN: "other.litware.test", ECDSA: true})
	dir := t.TempDir()
	ours.WriteFiles(t, dir, ca)

	type bindCase struct {
		name  string
		check Check
		// listen returns the address under test; transport is sip.edge.transport.
		listen    func(t *testing.T) string
		transport string
		want      want
		fix       string // substring of Fix on fail
	}
	tests := []bindCase{
		{"loopback, free port", bindXMPPCheck, func(t *testing.T) string { return "127.0.0.1:" + freePort(t, "127.0.0.1") }, "tls",
			want{"", Pass, "127.0.0.1, an address of this host, is free on"}, ""},
		{"wildcard 0.0.0.0", bindSIPCheck, func(t *testing.T) string { return "0.0.0.0:" + freePort(t, "") }, "tls",
			want{"", Pass, "the wildcard address (every interface) is free"}, ""},
		{"wildcard, empty host", bindXMPPCheck, func(t *testing.T) string { return ":" + freePort(t, "") }, "tls",
			want{"", Pass, "the wildcard address"}, ""},
		{"address not on this host", bindSIPCheck, func(t *testing.T) string { return "192.0.2.1:5061" }, "tls",
			want{"", Fail, "192.0.2.1 is not an address of this host"}, "set sip.listen to this server's own address"},
		{"port held by a plain listener", bindXMPPCheck, func(t *testing.T) string { return holdPort(t, nil) }, "tls",
			want{"", Fail, "port in use by another process (connected to"}, "ss -ltnup"},
		{"port held by a non-XMPP server", bindXMPPCheck, func(t *testing.T) string {
			return holdPort(t, func(c net.Conn) { io.WriteString(c, "HTTP/1.1 400 Bad Request\r\n\r\n") })
		}, "tls", want{"", Fail, `port in use by another process (127.0.0.1:`}, "stop it, or move xgw to another port in xmpp.listen"},
		{"port held by an XMPP server for another domain", bindXMPPCheck, func(t *testing.T) string {
			return holdPort(t, answerStream("fabrikam.test"))
		}, "tls", want{"", Fail, "an XMPP server that is not xgw for these domains: XMPP stream opened (from=fabrikam.test"}, "ss -ltnup"},
		{"port held by xgw (XMPP answers for our domain)", bindXMPPCheck, func(t *testing.T) string {
			return holdPort(t, answerStream("litware.test"))
		}, "tls", want{"", Pass, "held by xgw itself (an XMPP server answering for litware.test)"}, ""},
		{"SIP TLS port held by xgw (presents our certificate)", bindSIPCheck, func(t *testing.T) string {
			return holdPort(t, serveTLS(ours.TLS))
		}, "tls", want{"", Pass, "held by xgw itself (a TLS server presenting our certificate, CN=xgw-int.litware.test"}, ""},
		{"SIP TLS port held by another TLS server", bindSIPCheck, func(t *testing.T) string {
			return holdPort(t, serveTLS(theirs.TLS))
		}, "tls", want{"", Fail, "presenting another certificate, CN=other.litware.test"}, "ss -ltnup"},
		{"SIP TCP port held: cannot tell who", bindSIPCheck, func(t *testing.T) string { return holdPort(t, nil) }, "tcp",
			want{"", Fail, "port in use by another process (with transport tcp xgw cannot tell who it is)"}, "sip.listen"},
		{"SIP UDP port held", bindSIPCheck, func(t *testing.T) string {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { pc.Close() })
			return pc.LocalAddr().String()
		}, "udp", want{"", Fail, "port in use by another process"}, "sip.listen"},
	}
	if runtime.GOOS == "linux" {
		tests = append(tests, bindCase{"Linux loopback range beyond 127.0.0.1", bindXMPPCheck, func(t *testing.T) string { return "127.0.0.2:" + freePort(t, "127.0.0.2") }, "tls",
			want{"", Pass, "not on an interface but accepted by the kernel"}, ""})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // the hung-listener case waits out identifyTimeout
			addr := tt.listen(t)
			cfg := testConfig(func(c *config.Config) {
				if tt.check.ID == "bind.sip" {
					c.SIP.Listen = addr
				} else {
					c.XMPP.Listen = addr
				}
				c.SIP.Edge.Transport = tt.transport
				c.TLS = config.TLS{Cert: dir + "/cert.pem", Key: dir + "/key.pem", CA: dir + "/ca.pem"}
			})
			w := tt.want
			w.target = addr
			got := Run(context.Background(), &Env{Config: cfg}, []Check{tt.check})
			for _, r := range got {
				t.Logf("%s %s %s: %s | expected: %s | fix: %s", r.ID, r.Target, r.Status, r.Found, r.Expected, r.Fix)
			}
			assertIDResults(t, got, []idWant{{tt.check.ID, w}})
			if tt.fix != "" && !strings.Contains(got[0].Fix, tt.fix) {
				t.Errorf("fix %q lacks %q", got[0].Fix, tt.fix)
			}
		})
	}
}

// Two listen addresses on one TCP port would each probe free, yet xgw
// could not bind both.
func TestBindXMPPSharedPort(t *testing.T) {
	tests := []struct {
		name, sip, xmpp, transport string
		want                       Status
	}{
		{"same address and port", "127.0.0.1:5061", "127.0.0.1:5061", "tls", Fail},
		{"wildcard SIP, specific XMPP", "0.0.0.0:5061", "127.0.0.1:5061", "tls", Fail},
		{"IPv4-mapped spelling", "[::ffff:127.0.0.1]:5061", "127.0.0.1:5061", "tcp", Fail},
		{"SIP over UDP leaves the TCP port to XMPP", "127.0.0.1:5061", "127.0.0.1:5061", "udp", Pass},
		{"different addresses, same port", "127.0.0.1:5061", "127.0.0.2:5061", "tls", Pass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := freePort(t, "127.0.0.1") // the Pass cases really bind it
			swap := func(s string) string { return strings.Replace(s, ":5061", ":"+port, 1) }
			if runtime.GOOS != "linux" && strings.Contains(tt.xmpp, "127.0.0.2") {
				t.Skip("127.0.0.2 is bindable without configuration on Linux only")
			}
			cfg := testConfig(func(c *config.Config) {
				c.SIP.Listen, c.XMPP.Listen, c.SIP.Edge.Transport = swap(tt.sip), swap(tt.xmpp), tt.transport
			})
			got := Run(context.Background(), &Env{Config: cfg}, []Check{bindXMPPCheck})
			w := want{cfg.XMPP.Listen, tt.want, "is free"}
			if tt.want == Fail {
				w.found = "share TCP port " + port
			}
			assertIDResults(t, got, []idWant{{"bind.xmpp", w}})
		})
	}
}
