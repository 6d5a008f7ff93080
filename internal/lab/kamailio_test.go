package lab

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/internal/certtest"
)

// kamRequest sends a minimal SIP request over conn and returns the status
// line of the first final response.
func kamRequest(t *testing.T, conn net.Conn, method, uri, transport string) string {
	t.Helper()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	body := ""
	if method == "MESSAGE" {
		body = "hello"
	}
	fmt.Fprintf(conn, "%s %s SIP/2.0\r\nVia: SIP/2.0/%s %s;branch=z9hG4bK%d;rport\r\nMax-Forwards: 70\r\n"+
		"From: <sip:alice@litware.test>;tag=t1\r\nTo: <%s>\r\nCall-ID: %d@lab.test\r\nCSeq: 1 %s\r\n"+
		"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s",
		method, uri, transport, conn.LocalAddr(), time.Now().UnixNano(), uri, time.Now().UnixNano(), method, len(body), body)
	r := textproto.NewReader(bufio.NewReader(io.LimitReader(conn, 64<<10)))
	for range 5 {
		line, err := r.ReadLine()
		if err != nil {
			t.Fatalf("%s %s: reading the answer: %v", method, uri, err)
		}
		hdr, err := r.ReadMIMEHeader()
		if err != nil {
			t.Fatalf("%s %s: answer headers: %v", method, uri, err)
		}
		if n := hdr.Get("Content-Length"); n != "" && n != "0" {
			t.Fatalf("unexpected body in %q", line)
		}
		if !strings.HasPrefix(line, "SIP/2.0 1") {
			return line
		}
	}
	t.Fatalf("%s %s: no final response", method, uri)
	return ""
}

func TestKamailioTLSEdge(t *testing.T) {
	ca := certtest.NewCA(t, "Edge CA")
	edge := ca.Issue(t, certtest.Leaf{CN: "edge.litware.test", DNSNames: []string{"edge.litware.test"}})
	gw := ca.Issue(t, certtest.Leaf{CN: "xgw-int.litware.test", DNSNames: []string{"xgw-int.litware.test"}})
	cert, key, caFile := edge.WriteFiles(t, t.TempDir(), ca)

	// The next hop for gmail.test: a TLS SIP server standing in for xgw.
	hopLn, err := tls.Listen("tcp", "127.77.9.2:5061", &tls.Config{
		Certificates: []tls.Certificate{gw.TLS}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer hopLn.Close()
	relayed := make(chan string, 1)
	go func() {
		c, err := hopLn.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		tr := textproto.NewReader(bufio.NewReader(io.LimitReader(c, 64<<10)))
		line, err := tr.ReadLine()
		if err != nil {
			relayed <- "error: " + err.Error()
			return
		}
		hdr, err := tr.ReadMIMEHeader()
		if err != nil {
			relayed <- "error: " + err.Error()
			return
		}
		relayed <- line + " peer=" + c.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName
		fmt.Fprintf(c, "SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s;tag=hop\r\nCall-ID: %s\r\nCSeq: %s\r\nContent-Length: 0\r\n\r\n",
			hdr.Get("Via"), hdr.Get("From"), hdr.Get("To"), hdr.Get("Call-ID"), hdr.Get("CSeq"))
		io.Copy(io.Discard, c)
	}()

	k := StartKamailio(t, KamailioConfig{
		Addr: "127.77.9.1:5061", Aliases: []string{"edge.litware.test"},
		CertFile: cert, KeyFile: key, CAFile: caFile, RequireClientCert: true,
		Routes: []KamailioRoute{{Methods: []string{"MESSAGE", "SUBSCRIBE"}, Domains: []string{"gmail.test"}, NextHop: "sip:127.77.9.2:5061;transport=tls"}},
	})
	dial := func(t *testing.T, certs []tls.Certificate) *tls.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d := tls.Dialer{Config: &tls.Config{Certificates: certs, RootCAs: ca.Pool(), ServerName: "edge.litware.test"}}
		c, err := d.DialContext(ctx, "tcp", k.Addr)
		if err != nil {
			t.Fatalf("TLS to kamailio: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*tls.Conn)
	}

	t.Run("OPTIONS answered 200 with a client certificate", func(t *testing.T) {
		if got := kamRequest(t, dial(t, []tls.Certificate{gw.TLS}), "OPTIONS", "sip:edge.litware.test:5061", "TLS"); got != "SIP/2.0 200 OK" {
			t.Errorf("got %q, want SIP/2.0 200 OK", got)
		}
	})
	t.Run("MESSAGE for a routed domain relayed over mutual TLS", func(t *testing.T) {
		got := kamRequest(t, dial(t, []tls.Certificate{gw.TLS}), "MESSAGE", "sip:bob@gmail.test", "TLS")
		if got != "SIP/2.0 200 OK" {
			t.Errorf("got %q, want the next hop's 200 OK", got)
		}
		select {
		case r := <-relayed:
			if r != "MESSAGE sip:bob@gmail.test SIP/2.0 peer=edge.litware.test" {
				t.Errorf("next hop saw %q", r)
			}
		case <-time.After(5 * time.Second):
			t.Error("nothing reached the next hop")
		}
	})
	t.Run("MESSAGE for another domain refused", func(t *testing.T) {
		if got := kamRequest(t, dial(t, []tls.Certificate{gw.TLS}), "MESSAGE", "sip:bob@elsewhere.test", "TLS"); !strings.HasPrefix(got, "SIP/2.0 404") {
			t.Errorf("got %q, want 404", got)
		}
	})
	t.Run("client without certificate refused", func(t *testing.T) {
		c := dial(t, nil) // TLS 1.3: the refusal shows on the first read
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "OPTIONS sip:edge.litware.test SIP/2.0\r\n\r\n")
		_, err := c.Read(make([]byte, 100))
		var op *net.OpError
		if err == nil || !errors.As(err, &op) || op.Op != "remote error" {
			t.Errorf("read = %v, want a TLS alert from kamailio", err)
		}
	})
}

func TestKamailioConfigRefusesBadInput(t *testing.T) {
	cases := []struct {
		name string
		cfg  KamailioConfig
	}{
		{"no address", KamailioConfig{Transport: "tcp"}},
		{"tls without cert", KamailioConfig{Addr: "127.0.0.1:5061", Transport: "tls"}},
		{"unknown transport", KamailioConfig{Addr: "127.0.0.1:5061", Transport: "sctp"}},
		{"script injection in a domain", KamailioConfig{Addr: "127.0.0.1:5060", Transport: "tcp",
			Routes: []KamailioRoute{{Methods: []string{"MESSAGE"}, Domains: []string{`x"); exec("rm`}, NextHop: "sip:127.0.0.1"}}}},
		{"bad next hop", KamailioConfig{Addr: "127.0.0.1:5060", Transport: "tcp",
			Routes: []KamailioRoute{{Methods: []string{"MESSAGE"}, Domains: []string{"gmail.test"}, NextHop: "127.0.0.1\nexit;"}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.check(); err == nil {
				t.Errorf("check() accepted %+v", tc.cfg)
			}
		})
	}
}
