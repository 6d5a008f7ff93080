package sip_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	gwsip "github.com/xgw-gateway/xgw/gateway/sip"
)

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func options(branch, callID string) string {
	return crlf("OPTIONS sip:xgw@xmpp.test SIP/2.0\n" +
		"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK" + branch + "\n" +
		"From: <sip:alice@litware.test>;tag=a1\nTo: <sip:xgw@xmpp.test>\n" +
		"Call-ID: " + callID + "\nCSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n")
}

// readStatus reads one response's status line and skips to its end.
func readStatus(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	status, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading headers: %v", err)
		}
		if l == "\r\n" {
			break
		}
	}
	return strings.TrimSpace(status)
}

// Hostile input on a real TCP connection: answered where SIP allows,
// the connection closed where framing is lost, never a crash.
func TestHostileStream(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tcp", nil, nil)
	ed.serve()
	h := newHandler()
	_, logs, _ := gateway(t, p, ed, h, func(c *gwsip.Config) { c.MaxBodySize, c.MaxMessageSize = 1024, 4096 })
	dial := func(t *testing.T) (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", ed.gwAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return c, bufio.NewReader(c)
	}
	tests := []struct {
		name   string
		send   string
		want   []string // status lines in order
		closes bool     // the gateway closes the connection afterwards
	}{
		{"malformed then valid on one connection",
			crlf("MESSAGE sip:romeo@xmpp.test SIP/2.0\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK1\nFrom: <sip:a@litware.test>;tag=1\nTo: <sip:romeo@xmpp.test>\nCSeq: 1 MESSAGE\nContent-Length: 0\n\n") + options("2", "ok1"),
			[]string{"SIP/2.0 400 Missing call-id", "SIP/2.0 200 OK"}, false},
		{"keepalive ping between messages", "\r\n\r\n" + options("3", "ok2"), nil, false},
		{"body over the limit", crlf("MESSAGE sip:romeo@xmpp.test SIP/2.0\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK4\nFrom: <sip:a@litware.test>;tag=1\nTo: <sip:romeo@xmpp.test>\nCall-ID: big\nCSeq: 1 MESSAGE\nContent-Length: 100000\n\n"),
			[]string{"SIP/2.0 413 Request Entity Too Large"}, true},
		{"header section over the limit", crlf("MESSAGE sip:romeo@xmpp.test SIP/2.0\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK5\nX-Pad: " + strings.Repeat("x", 5000) + "\n\n"),
			[]string{"SIP/2.0 513 Message Too Large"}, true},
		{"not SIP", "GET / HTTP/1.1\r\nHost: xgw\r\n\r\n", nil, true},
		{"binary", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, r := dial(t)
			if _, err := io.WriteString(c, tt.send); err != nil {
				t.Fatal(err)
			}
			if tt.name == "keepalive ping between messages" {
				if pong, _ := r.ReadString('\n'); pong != "\r\n" {
					t.Fatalf("pong %q, want CRLF", pong)
				}
				tt.want = []string{"SIP/2.0 200 OK"}
			}
			for _, w := range tt.want {
				if got := readStatus(t, r); got != w {
					t.Errorf("status %q, want %q", got, w)
				}
			}
			if tt.closes {
				if n, err := r.ReadByte(); err == nil {
					t.Errorf("connection still open, read %q", n)
				}
			}
		})
	}
	select {
	case c := <-h.messages:
		t.Errorf("a refused MESSAGE reached the handler: %s", c.req.Short())
	default:
	}
	for _, want := range []string{"why=\"missing mandatory headers call-id\"", "body over the size limit", "input is not SIP"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// The same over UDP: a datagram is answered or dropped on its own.
func TestHostileDatagram(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tcp", nil, nil)
	ed.serve()
	_, _, _ = gateway(t, p, ed, newHandler(), func(c *gwsip.Config) { c.ListenTransport = "udp"; c.MaxBodySize = 1024 })
	c, err := net.Dial("udp", ed.gwAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// rport: answer to the socket the request came from (RFC 3581).
	udp := func(s string) string {
		return strings.ReplaceAll(strings.ReplaceAll(s, "SIP/2.0/TCP", "SIP/2.0/UDP"), ";branch=", ";rport;branch=")
	}
	tests := []struct{ name, send, want string }{
		{"missing Call-ID", udp(crlf("MESSAGE sip:romeo@xmpp.test SIP/2.0\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK1\nFrom: <sip:a@litware.test>;tag=1\nTo: <sip:romeo@xmpp.test>\nCSeq: 1 MESSAGE\n\n")), "SIP/2.0 400 Missing call-id"},
		{"body over the limit", udp(crlf("MESSAGE sip:romeo@xmpp.test SIP/2.0\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK2\nFrom: <sip:a@litware.test>;tag=1\nTo: <sip:romeo@xmpp.test>\nCall-ID: u2\nCSeq: 1 MESSAGE\n\n") + strings.Repeat("x", 1200)), "SIP/2.0 413 Request Entity Too Large"},
		{"garbage is dropped", "\x00\x01binary\xff", ""},
		{"valid OPTIONS", udp(options("3", "u3")), "SIP/2.0 200 OK"},
	}
	buf := make([]byte, 4096)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Write([]byte(tt.send)); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			n, err := c.Read(buf)
			if tt.want == "" {
				if err == nil {
					t.Errorf("garbage answered with %q", buf[:n])
				}
				return
			}
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if line, _, _ := strings.Cut(string(buf[:n]), "\r\n"); line != tt.want {
				t.Errorf("answer %q, want %q", line, tt.want)
			}
		})
	}
}
