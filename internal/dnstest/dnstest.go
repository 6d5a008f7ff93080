// Package dnstest runs an authoritative DNS server in the test process,
// serving zone-file text (usually from testdata/zones/) over UDP and TCP on
// one loopback port, with NXDOMAIN, NODATA and truncation like a real one.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server is a running authoritative server.
type Server struct {
	Addr string // HOST:PORT, the same for UDP and TCP

	mu  sync.RWMutex
	rrs map[string][]dns.RR // by lower-case owner name
}

// Start serves zone (zone-file text, $ORIGIN and relative names allowed;
// origin is the default origin) on addr ("127.0.0.1:0" picks a free port).
// The server stops when the test ends.
func Start(t testing.TB, addr, origin, zone string) *Server {
	t.Helper()
	s := &Server{rrs: map[string][]dns.RR{}}
	if err := s.Load(origin, zone); err != nil {
		t.Fatal(err)
	}
	pc, ln, err := listenBoth(addr)
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: s}, {Listener: ln, Handler: s}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return s
}

// Load adds the records of a zone text; later calls add to what is served.
func (s *Server) Load(origin, zone string) error {
	zp := dns.NewZoneParser(strings.NewReader(zone), dns.Fqdn(origin), "")
	s.mu.Lock()
	defer s.mu.Unlock()
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		name := strings.ToLower(rr.Header().Name)
		s.rrs[name] = append(s.rrs[name], rr)
	}
	if err := zp.Err(); err != nil {
		return fmt.Errorf("dnstest: zone %s: %w", origin, err)
	}
	return nil
}

// Remove deletes every record of name (any type).
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rrs, strings.ToLower(dns.Fqdn(name)))
}

// ServeDNS answers from the loaded records, authoritatively.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	s.mu.RLock()
	rrs, ok := s.rrs[strings.ToLower(q.Name)]
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype || q.Qtype == dns.TypeANY {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
	}
	s.mu.RUnlock()
	if !ok {
		m.Rcode = dns.RcodeNameError
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if o := r.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

// listenBoth binds UDP and TCP on one port. With port 0 the UDP port the
// kernel picks may be taken for TCP, so a few other ports are tried.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	_, port, _ := net.SplitHostPort(addr)
	var err error
	for range 20 {
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			return nil, nil, fmt.Errorf("dnstest: listen udp %s: %w", addr, err)
		}
		var ln net.Listener
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			return pc, ln, nil
		}
		pc.Close()
		if port != "0" {
			break
		}
	}
	return nil, nil, fmt.Errorf("dnstest: listen tcp beside udp on %s: %w", addr, err)
}
