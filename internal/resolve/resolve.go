// Package resolve asks DNS questions of one chosen server (staging DNS via
// --dns-server, or the system's resolv.conf servers) with miekg/dns, so that
// `xgw check` and the gateway see exactly the same answers.
//
// The Go resolver cannot be pointed at a port other than 53 per lookup and
// hides NXDOMAIN versus NODATA; asking directly keeps both visible.
package resolve

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Resolver sends queries to Servers in order until one answers with
// success (records or NODATA) or NXDOMAIN.
type Resolver struct {
	Servers []string      // HOST:PORT
	Timeout time.Duration // per exchange; the ctx deadline still applies
	// Trace, when set, sees every query sent (out) and answer received,
	// with the server asked: the gateway's protocol trace.
	Trace func(out bool, server string, m *dns.Msg)
}

// New returns a Resolver for server ("HOST:PORT"), or for the nameservers
// of /etc/resolv.conf when server is "".
func New(server string) (*Resolver, error) {
	if server != "" {
		if _, _, err := net.SplitHostPort(server); err != nil {
			server = net.JoinHostPort(server, "53")
		}
		return &Resolver{Servers: []string{server}, Timeout: 2 * time.Second}, nil
	}
	cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return nil, fmt.Errorf("resolve: read /etc/resolv.conf: %w", err)
	}
	r := &Resolver{Timeout: time.Duration(cc.Timeout) * time.Second}
	for _, s := range cc.Servers {
		r.Servers = append(r.Servers, net.JoinHostPort(s, cc.Port))
	}
	return r, nil
}

// Error is a lookup that got an answer saying no, or no answer.
type Error struct {
	Name   string
	Type   string
	Server string
	Rcode  int   // dns.RcodeNameError for NXDOMAIN; RcodeSuccess with no records is NODATA
	Err    error // transport failure, when no server answered
}

func (e *Error) Error() string {
	switch {
	case e.Err != nil:
		return fmt.Sprintf("%s %s: no answer from %s: %v", e.Type, e.Name, e.Server, e.Err)
	case e.Rcode == dns.RcodeSuccess:
		return fmt.Sprintf("%s %s: no such record (NODATA) at %s", e.Type, e.Name, e.Server)
	default:
		return fmt.Sprintf("%s %s: %s from %s", e.Type, e.Name, dns.RcodeToString[e.Rcode], e.Server)
	}
}

func (e *Error) Unwrap() error { return e.Err }

// IsNotFound reports whether err says the name or record does not exist
// (NXDOMAIN or NODATA), as opposed to a failure to get an answer.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Err == nil && (e.Rcode == dns.RcodeNameError || e.Rcode == dns.RcodeSuccess)
}

// Query sends one question and returns the answer section's records of type
// qtype. UDP answers with TC set are asked again over TCP.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false)
	typ := dns.TypeToString[qtype]
	var last *Error
	for _, srv := range r.Servers {
		in, err := r.exchange(ctx, m, srv)
		if err != nil {
			last = &Error{Name: name, Type: typ, Server: srv, Err: err}
			if ctx.Err() != nil {
				break
			}
			continue
		}
		switch in.Rcode {
		case dns.RcodeSuccess:
		case dns.RcodeNameError:
			return nil, &Error{Name: name, Type: typ, Server: srv, Rcode: in.Rcode}
		default:
			// SERVFAIL, REFUSED and the like say nothing about the name:
			// another server may well answer.
			last = &Error{Name: name, Type: typ, Server: srv, Rcode: in.Rcode}
			continue
		}
		var out []dns.RR
		for _, rr := range in.Answer {
			if rr.Header().Rrtype == qtype {
				out = append(out, rr)
			}
		}
		if len(out) == 0 {
			return nil, &Error{Name: name, Type: typ, Server: srv, Rcode: in.Rcode}
		}
		return out, nil
	}
	if last == nil {
		return nil, &Error{Name: name, Type: typ, Err: errors.New("no DNS server configured")}
	}
	return nil, last
}

func (r *Resolver) exchange(ctx context.Context, m *dns.Msg, server string) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: r.Timeout}
	if r.Trace != nil {
		r.Trace(true, server, m)
	}
	in, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, m, server)
	}
	if r.Trace != nil && err == nil {
		r.Trace(false, server, in)
	}
	return in, err
}

// SRV returns the records of _service._proto.name in RFC 2782 order: by
// priority, and within one priority a weighted random shuffle. A lone "."
// target (service explicitly not offered, RFC 6120 §3.2.1) is returned as is;
// see NotOffered.
func (r *Resolver) SRV(ctx context.Context, service, proto, name string) ([]*net.SRV, error) {
	rrs, err := r.Query(ctx, "_"+service+"._"+proto+"."+name, dns.TypeSRV)
	if err != nil {
		return nil, err
	}
	recs := make([]*net.SRV, 0, len(rrs))
	for _, rr := range rrs {
		s := rr.(*dns.SRV)
		recs = append(recs, &net.SRV{Target: s.Target, Port: s.Port, Priority: s.Priority, Weight: s.Weight})
	}
	return OrderSRV(recs, rand.IntN), nil
}

// NotOffered reports whether recs is the single "." record that says the
// service is decidedly not available at this domain.
func NotOffered(recs []*net.SRV) bool {
	return len(recs) == 1 && (recs[0].Target == "." || recs[0].Target == "")
}

// OrderSRV sorts recs as RFC 2782 prescribes, using intn (rand.IntN in
// production) for the weighted selection.
func OrderSRV(recs []*net.SRV, intn func(int) int) []*net.SRV {
	slices.SortStableFunc(recs, func(a, b *net.SRV) int { return int(a.Priority) - int(b.Priority) })
	out := make([]*net.SRV, 0, len(recs))
	for i := 0; i < len(recs); {
		j := i
		for j < len(recs) && recs[j].Priority == recs[i].Priority {
			j++
		}
		// RFC 2782: weight-0 records go first, so they get the rare
		// selection a random draw of 0 gives them.
		group := slices.Clone(recs[i:j])
		slices.SortStableFunc(group, func(a, b *net.SRV) int { return min(int(a.Weight), 1) - min(int(b.Weight), 1) })
		for len(group) > 0 {
			total := 0
			for _, s := range group {
				total += int(s.Weight)
			}
			pick := 0
			if total > 0 {
				n := intn(total + 1)
				for sum := 0; pick < len(group); pick++ {
					sum += int(group[pick].Weight)
					if sum >= n {
						break
					}
				}
				pick = min(pick, len(group)-1)
			}
			out = append(out, group[pick])
			group = slices.Delete(group, pick, pick+1)
		}
		i = j
	}
	return out
}

// Addrs returns the A and AAAA addresses of host (an IP literal is returned
// as is). It fails only when neither query returned an address.
func (r *Resolver) Addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{a}, nil
	}
	var addrs []netip.Addr
	var firstErr error
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := r.Query(ctx, host, t)
		if err != nil {
			if firstErr == nil || (IsNotFound(firstErr) && !IsNotFound(err)) {
				firstErr = err
			}
			continue
		}
		for _, rr := range rrs {
			switch v := rr.(type) {
			case *dns.A:
				a, _ := netip.AddrFromSlice(v.A.To4())
				addrs = append(addrs, a)
			case *dns.AAAA:
				a, _ := netip.AddrFromSlice(v.AAAA)
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 {
		return nil, firstErr
	}
	return addrs, nil
}

// NetResolver returns a *net.Resolver that sends its queries to the same
// servers, for libraries that take one (sipgo, net.Dialer).
func (r *Resolver) NetResolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			var err error
			for _, s := range r.Servers {
				var c net.Conn
				if c, err = d.DialContext(ctx, network, s); err == nil {
					return c, nil
				}
			}
			return nil, err
		},
	}
}
