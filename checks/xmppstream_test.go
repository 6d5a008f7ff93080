package checks

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/dnstest"
	"github.com/xgw-gateway/xgw/internal/resolve"
)

// fakePeer is a real TCP listener that answers the way a kind of server on
// port 5269 would.
type fakePeer struct {
	Addr string
	mu   sync.Mutex
	tos  []string // to= of each stream header received
}

// peerAnswer writes a server's answer after our stream header arrived
// (to is its to= attribute); an empty answer leaves the peer silent.
type peerAnswer func(to string) string

// xmppAnswer is a healthy XMPP server offering STARTTLS and dialback.
func xmppAnswer(to string) string {
	return `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' id='s1' from='` + to + `' version='1.0'>` +
		`<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>`
}

// startFakePeer listens on addr until the test ends. Each connection gets
// answer (when it is not nil) once a stream header arrived; a nil answer
// writes raw instead, without reading (an HTTP server, a banner...).
func startFakePeer(t *testing.T, addr string, answer peerAnswer, raw string) *fakePeer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	p := &fakePeer{Addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if answer == nil {
					if raw == "" {
						io.Copy(io.Discard, c) // a black hole: accept, never answer
						return
					}
					c.Read(make([]byte, 512))
					io.WriteString(c, raw)
					c.(*net.TCPConn).CloseWrite()
					io.Copy(io.Discard, c)
					return
				}
				dec := xml.NewDecoder(io.LimitReader(c, 4096))
				start, err := firstElement(dec)
				if err != nil {
					return
				}
				to := ""
				for _, a := range start.Attr {
					if a.Name.Local == "to" {
						to = a.Value
					}
				}
				p.mu.Lock()
				p.tos = append(p.tos, to)
				p.mu.Unlock()
				io.WriteString(c, answer(to))
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return p
}

func (p *fakePeer) received() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.tos...)
}

// testResolver serves zone (origin litware.test) from an in-process
// authoritative server.
func testResolver(t *testing.T, zone string) *resolve.Resolver {
	t.Helper()
	srv := dnstest.Start(t, "127.0.0.1:0", "litware.test", zone)
	return &resolve.Resolver{Servers: []string{srv.Addr}, Timeout: time.Second}
}

func TestOpenXMPPStreamRefusesHostileAnswers(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		kind streamFailKind
	}{
		{"html", "<html><body>hello</body></html>", failNotXMPP},
		{"doctype", "<!DOCTYPE foo [<!ENTITY a 'aaaa'>]><foo>&a;</foo>", failNotXMPP},
		{"endless attribute", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' id='" + strings.Repeat("a", 200<<10), failNotXMPP},
		{"binary", "\x16\x03\x01\x00\xa5\x01\x00", failNotXMPP},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			go func() {
				io.CopyN(io.Discard, server, int64(len(streamHeader("litware.test"))))
				io.WriteString(server, tc.raw)
				server.Close()
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := openXMPPStream(ctx, client, "litware.test")
			var se *streamError
			if !errors.As(err, &se) || se.Kind != tc.kind {
				t.Fatalf("openXMPPStream = %v, want kind %d", err, tc.kind)
			}
			if len(se.Saw) > sawLimit+10 {
				t.Errorf("quoted answer is %d bytes, want at most ~%d", len(se.Saw), sawLimit)
			}
		})
	}
}

// netConfig is a deployment whose external FQDN is ext.
func netConfig(ext string) *config.Config {
	return &config.Config{
		SIP: config.SIP{Domains: []string{"litware.test", "college.litware.test"}},
		XMPP: config.XMPP{
			InternalFQDN: "xgw-int.litware.test",
			ExternalFQDN: ext,
		},
	}
}
