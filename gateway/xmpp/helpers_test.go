package xmpp

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/certtest"
	"github.com/xgw-gateway/xgw/internal/dnstest"
	"github.com/xgw-gateway/xgw/internal/resolve"
)

// waitFor bounds every wait in these tests.
const waitFor = 5 * time.Second

// logBuf collects slog output so tests can assert log lines.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitLog waits until the log contains every substring on one line.
func (l *logBuf) waitLog(t *testing.T, subs ...string) string {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(l.String(), "\n") {
			if containsAll(line, subs) {
				return line
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no log line with %q in:\n%s", subs, l.String())
	return ""
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// wire is a raw TCP peer speaking hand-written XML to a Server.
type wire struct {
	t    *testing.T
	conn net.Conn
	mu   sync.Mutex
	buf  bytes.Buffer
	pos  int
	eof  bool
}

func dialWire(t *testing.T, addr string) *wire {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	return wrapWire(t, c)
}

func wrapWire(t *testing.T, c net.Conn) *wire {
	w := &wire{t: t, conn: c}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := c.Read(b)
			w.mu.Lock()
			w.buf.Write(b[:n])
			if err != nil {
				w.eof = true
			}
			w.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return w
}

func (w *wire) send(s string) {
	w.t.Helper()
	w.conn.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := io.WriteString(w.conn, s); err != nil {
		w.t.Fatalf("write %q: %v", s, err)
	}
}

// expect waits for sub in what the server sent since the last match and
// returns the text up to the end of the match.
func (w *wire) expect(sub string) string {
	w.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		w.mu.Lock()
		rest := w.buf.String()[w.pos:]
		eof := w.eof
		if i := strings.Index(rest, sub); i >= 0 {
			w.pos += i + len(sub)
			w.mu.Unlock()
			return rest[:i+len(sub)]
		}
		w.mu.Unlock()
		if eof || time.Now().After(deadline) {
			w.t.Fatalf("server did not send %q (closed=%v); it sent:\n%s", sub, eof, rest)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expectClosed waits until the server closed the connection.
func (w *wire) expectClosed() {
	w.t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		eof := w.eof
		w.mu.Unlock()
		if eof {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.t.Fatal("server did not close the connection")
}

// all returns everything received.
func (w *wire) all() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// attrOf extracts attribute name from the first tag containing tagSub in s.
func attrOf(s, tagSub, name string) string {
	i := strings.Index(s, tagSub)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.IndexByte(s, '>'); j >= 0 {
		s = s[:j]
	}
	for _, q := range []string{"'", `"`} {
		if k := strings.Index(s, " "+name+"="+q); k >= 0 {
			v := s[k+len(name)+3:]
			return v[:strings.Index(v, q)]
		}
	}
	return ""
}

// fed is a small federation on loopback: servers for test domains and one
// authoritative DNS server resolving all of them.
type fed struct {
	t   testing.TB
	dns *dnstest.Server
	ca  *certtest.CA
}

// dnsHost is where each test's DNS server listens: dnstest takes a UDP port
// and then the same TCP port, which on 127.0.0.1 collides now and then with
// the ephemeral ports of this package's many loopback connections.
const dnsHost = "127.0.77.1"

func newFed(t testing.TB) *fed {
	return &fed{t: t, dns: dnstest.Start(t, dnsHost+":0", "test.", "")}
}

func (f *fed) resolver() *resolve.Resolver {
	return &resolve.Resolver{Servers: []string{f.dns.Addr}, Timeout: time.Second}
}

// node is one running Server.
type peer struct {
	srv    *Server
	addr   string
	domain string
	logs   *logBuf
	inbox  chan *Stanza
	secret []byte
}

type peerOpts struct {
	domains  []string
	partners []config.Partner
	open     bool
	deny     []string
	tls      *tls.Config
	mod      func(*Config)
	noDNS    bool // don't publish SRV records
	// directTLS serves XEP-0368 direct TLS only (_xmpps-server._tcp).
	directTLS bool
}

// add starts a Server for opts.domains[0] (and the other domains) on
// 127.0.0.1:0, publishes _xmpp-server._tcp records for every domain and
// returns it.
func (f *fed) add(o peerOpts) *peer {
	t := f.t
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{addr: ln.Addr().String(), domain: o.domains[0], logs: &logBuf{}, inbox: make(chan *Stanza, 16),
		secret: []byte("secret of " + o.domains[0])}
	cfg := Config{
		Domains:            o.domains,
		TLS:                o.tls,
		Resolver:           f.resolver(),
		Federation:         o.partners,
		Open:               o.open,
		Deny:               o.deny,
		DialbackSecret:     p.secret,
		NegotiationTimeout: 3 * time.Second,
		ConnectTimeout:     time.Second,
		Logger:             slog.New(slog.NewTextHandler(p.logs, nil)),
		Handler: HandlerFunc(func(ctx context.Context, st *Stanza) error {
			p.inbox <- st
			return nil
		}),
	}
	if o.mod != nil {
		o.mod(&cfg)
	}
	p.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if o.directTLS {
		go p.srv.ServeDirectTLS(ctx, ln)
	} else {
		go p.srv.Serve(ctx, ln)
	}
	t.Cleanup(func() {
		cancel()
		sctx, c := context.WithTimeout(context.Background(), waitFor)
		defer c()
		if err := p.srv.Shutdown(sctx); err != nil {
			t.Errorf("shutdown %s: %v", p.domain, err)
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", p.domain, p.logs.String())
		}
	})
	if !o.noDNS {
		_, port, _ := net.SplitHostPort(p.addr)
		for _, d := range o.domains {
			svc := "_xmpp-server"
			if o.directTLS {
				svc = "_xmpps-server"
			}
			zone := fmt.Sprintf("%s._tcp.%s. 60 IN SRV 0 5 %s xmpp.%s.\nxmpp.%s. 60 IN A 127.0.0.1\n", svc, d, port, p.domain, p.domain)
			if err := f.dns.Load("test.", zone); err != nil {
				t.Fatal(err)
			}
		}
	}
	return p
}

// recv waits for one stanza at p's Handler.
func (p *peer) recv(t *testing.T) *Stanza {
	t.Helper()
	select {
	case st := <-p.inbox:
		return st
	case <-time.After(waitFor):
		t.Fatalf("%s: no stanza reached the handler; log:\n%s", p.domain, p.logs.String())
		return nil
	}
}

func mustStanza(t testing.TB, s string) *Stanza {
	t.Helper()
	st, err := ParseStanza([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// tlsFor issues a certificate for domain from ca and returns a server config
// trusting roots.
func tlsFor(t testing.TB, ca *certtest.CA, domain string, roots *certtest.CA) *tls.Config {
	leaf := ca.Issue(t, certtest.Leaf{CN: domain, DNSNames: []string{domain}, ECDSA: true})
	return &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, RootCAs: roots.Pool()}
}
