package sip_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	gwsip "github.com/xgw-gateway/xgw/gateway/sip"
	"github.com/xgw-gateway/xgw/internal/certtest"
)

// The listener takes the Edge's certificate only: chained to tls.ca and
// valid for the Edge's FQDN. Every refusal names what was presented.
func TestInboundMutualTLS(t *testing.T) {
	p := newPKI(t)
	server := startEdge(t, p, "tls", p.edge, p.edge)
	server.serve()
	_, logs, _ := gateway(t, p, server, newHandler(), nil)

	tests := []struct {
		name    string
		client  *certtest.Pair
		refused string // "" when accepted, else the subject the log must name
	}{
		{"edge certificate", p.edge, ""},
		{"same CA, other name", p.rogue, "CN=rogue.test DNS:rogue.test"},
		{"edge name, other CA", p.foreign, "CN=edge.litware.test DNS:edge.litware.test"},
		{"no certificate", nil, "(none)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client := startEdge(t, p, "tls", p.edge, tt.client)
			client.gwAddr = server.gwAddr
			res, err := client.do(client.request(sip.OPTIONS, "sip:xgw@xmpp.test"))
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("OPTIONS from the Edge: %v", err)
				}
				if res.StatusCode != 200 {
					t.Fatalf("status = %d, want 200", res.StatusCode)
				}
				for _, h := range []string{"Allow", "Accept", "Supported", "Allow-Events"} {
					if res.GetHeader(h) == nil {
						t.Errorf("200 to OPTIONS lacks %s", h)
					}
				}
				if a := hdr(res, "Allow"); !strings.Contains(a, "MESSAGE") || !strings.Contains(a, "SUBSCRIBE") || !strings.Contains(a, "NOTIFY") {
					t.Errorf("Allow = %q", a)
				}
				return
			}
			if err == nil {
				t.Fatalf("OPTIONS with a refused certificate got %d", res.StatusCode)
			}
			waitFor(t, "the refusal log line", func() bool {
				for _, l := range strings.Split(logs.String(), "\n") {
					if strings.Contains(l, "refused TLS client") && strings.Contains(l, tt.refused) {
						return true
					}
				}
				return false
			})
		})
	}
}

// Outbound, the gateway presents its certificate, verifies the Edge's and
// reuses one connection.
func TestOutboundMutualTLS(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tls", p.edge, p.edge)
	var mu sync.Mutex
	var sources, peers []string
	ed.srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		peer := ""
		if c, err := ed.ua.TransportLayer().GetConnection("tls", req.Source()); err == nil && c != nil {
			if tc, ok := c.(*sip.TCPConnection); ok {
				if tl, ok := tc.Conn.(*tls.Conn); ok && len(tl.ConnectionState().PeerCertificates) > 0 {
					peer = tl.ConnectionState().PeerCertificates[0].Subject.CommonName
				}
			}
			c.TryClose()
		}
		mu.Lock()
		sources, peers = append(sources, req.Source()), append(peers, peer)
		mu.Unlock()
		tx.Respond(sip.NewResponseFromRequest(req, 202, "Accepted", nil))
	})
	ed.serve()
	ep, _, _ := gateway(t, p, ed, newHandler(), nil)

	for i := range 3 {
		res, err := ep.SendMessage(context.Background(), gwsip.OutboundMessage{
			From: uri(t, "sip:romeo@xmpp.test"), To: uri(t, "sip:alice@litware.test"),
			ContentType: "text/plain;charset=UTF-8", Body: []byte("hello " + itoa(i)),
		})
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if res.StatusCode != 202 {
			t.Fatalf("message %d: status %d, want 202", i, res.StatusCode)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range sources {
		if peers[i] != gwName {
			t.Errorf("message %d: the Edge saw client certificate %q, want %q", i, peers[i], gwName)
		}
		if sources[i] != sources[0] {
			t.Errorf("message %d came from %s, message 0 from %s: connection not reused", i, sources[i], sources[0])
		}
	}
}

// An Edge whose server certificate is not valid for its FQDN is refused
// before anything is sent.
func TestOutboundRejectsWrongEdgeCertificate(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tls", p.rogue, p.edge)
	got := make(chan struct{}, 1)
	ed.srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		got <- struct{}{}
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	ed.serve()
	ep, _, _ := gateway(t, p, ed, newHandler(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := ep.SendMessage(ctx, gwsip.OutboundMessage{From: uri(t, "sip:romeo@xmpp.test"), To: uri(t, "sip:alice@litware.test")})
	if !errors.Is(err, gwsip.ErrTransport) {
		t.Fatalf("err = %v, want ErrTransport", err)
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("err = %v, want it to name the certificate problem", err)
	}
	select {
	case <-got:
		t.Error("the MESSAGE reached an Edge with the wrong certificate")
	default:
	}
}

// The OPTIONS keepalive reports the Edge up, then down once it is gone.
func TestKeepalive(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tls", p.edge, p.edge)
	ed.srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	ed.serve()
	ep, logs, _ := gateway(t, p, ed, newHandler(), func(c *gwsip.Config) {
		c.KeepaliveInterval = 100 * time.Millisecond
	})
	waitFor(t, "edge up", func() bool { return ep.EdgeHealth().Up })
	if h := ep.EdgeHealth(); h.Status != 200 || h.Since.IsZero() {
		t.Errorf("health = %+v, want status 200 and a Since time", h)
	}
	ed.ln.Close()
	ed.ua.Close()
	waitFor(t, "edge down", func() bool { return !ep.EdgeHealth().Up })
	h := ep.EdgeHealth()
	if !errors.Is(h.Err, gwsip.ErrTransport) && !errors.Is(h.Err, gwsip.ErrTimeout) {
		t.Errorf("down with err %v, want ErrTransport or ErrTimeout", h.Err)
	}
	if !strings.Contains(logs.String(), "edge down") {
		t.Errorf("no 'edge down' log line:\n%s", logs.String())
	}
}
