package sip_test

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/xgw-gateway/xgw/internal/certtest"
)

// SetTLS (a reload): the next handshake on the listener presents the new
// certificate and verifies the Edge against the new CA.
func TestSetTLS(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tls", p.edge, p.edge)
	ed.srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	ed.serve()
	ep, logs, _ := gateway(t, p, ed, newHandler(), nil)
	lo := []net.IP{net.IPv4(127, 0, 0, 1)}

	// handshake dials the listener as the Edge and returns the gateway's
	// certificate, and whether the gateway kept the connection (it closes
	// it after refusing the client certificate).
	handshake := func(client *certtest.Pair) (serial string, accepted bool) {
		t.Helper()
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ep.Addr().String(),
			&tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{client.TLS}}) // the serial is checked
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		serial = conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err = conn.Read(make([]byte, 1))
		var ne net.Error
		accepted = errors.As(err, &ne) && ne.Timeout() // still open, waiting for a request
		return serial, accepted
	}

	if serial, ok := handshake(p.edge); serial != p.gw.Cert.SerialNumber.String() || !ok {
		t.Fatalf("before SetTLS: serial %s accepted %v, want the gateway's %s, accepted", serial, ok, p.gw.Cert.SerialNumber)
	}
	renewed := p.otherCA.Issue(t, certtest.Leaf{CN: gwName, DNSNames: []string{gwName}, IPs: lo, ECDSA: true})
	newEdge := p.otherCA.Issue(t, certtest.Leaf{CN: edgeName, DNSNames: []string{edgeName}, IPs: lo, ECDSA: true})
	if err := ep.SetTLS(&renewed.TLS, p.otherCA.Pool()); err != nil {
		t.Fatal(err)
	}
	if serial, _ := handshake(newEdge); serial != renewed.Cert.SerialNumber.String() {
		t.Errorf("after SetTLS: serial %s, want the new certificate's %s", serial, renewed.Cert.SerialNumber)
	}
	if _, ok := handshake(newEdge); !ok {
		t.Errorf("an Edge certificate from the new CA was refused:\n%s", logs.String())
	}
	if _, ok := handshake(p.edge); ok {
		t.Errorf("an Edge certificate from the old CA is still accepted")
	}
	if err := ep.SetTLS(nil, nil); err == nil {
		t.Error("SetTLS(nil, nil) accepted, want an error naming tls.cert and tls.ca")
	}
}
