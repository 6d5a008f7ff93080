package resolve_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/xgw-gateway/xgw/internal/dnstest"
	"github.com/xgw-gateway/xgw/internal/resolve"
)

func srv(target string, priority, weight uint16) *net.SRV {
	return &net.SRV{Target: target, Port: 5269, Priority: priority, Weight: weight}
}

func targets(recs []*net.SRV) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Target
	}
	return out
}

func TestOrderSRV(t *testing.T) {
	tests := []struct {
		name     string
		recs     []*net.SRV
		picks    []int // what intn returns, call by call
		want     []string
		wantArgs []int // what intn was asked for: total weight + 1
	}{
		{"priority first, lowest value wins",
			[]*net.SRV{srv("a", 20, 0), srv("b", 10, 0), srv("c", 0, 0)}, nil,
			[]string{"c", "b", "a"}, nil},
		{"zero weights keep their order without drawing",
			[]*net.SRV{srv("a", 0, 0), srv("b", 0, 0)}, nil,
			[]string{"a", "b"}, nil},
		{"a draw of 0 takes the first record each round",
			[]*net.SRV{srv("a", 0, 1), srv("b", 0, 2), srv("c", 0, 7)}, []int{0, 0, 0},
			[]string{"a", "b", "c"}, []int{11, 10, 8}},
		{"the highest draw takes the last weighted record",
			[]*net.SRV{srv("a", 0, 1), srv("b", 0, 2), srv("c", 0, 0)}, []int{3, 1},
			[]string{"b", "a", "c"}, []int{4, 2}},
		{"running sum picks by weight",
			[]*net.SRV{srv("a", 0, 10), srv("b", 0, 20), srv("c", 0, 70)}, []int{15, 50, 0},
			[]string{"b", "c", "a"}, []int{101, 81, 11}},
		{"weight 0 goes first and wins a draw of 0 (RFC 2782)",
			[]*net.SRV{srv("a", 0, 5), srv("z", 0, 0)}, []int{0, 0},
			[]string{"z", "a"}, []int{6, 6}},
		{"each priority is shuffled on its own",
			[]*net.SRV{srv("x", 1, 1), srv("y", 1, 1), srv("z", 0, 5)}, []int{0, 2, 0},
			[]string{"z", "y", "x"}, []int{6, 3, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var args []int
			intn := func(n int) int {
				args = append(args, n)
				if len(args) > len(tt.picks) {
					t.Fatalf("intn(%d) called %d times, want %d", n, len(args), len(tt.picks))
				}
				p := tt.picks[len(args)-1]
				if p < 0 || p >= n {
					t.Fatalf("test pick %d out of range for intn(%d)", p, n)
				}
				return p
			}
			got := resolve.OrderSRV(tt.recs, intn)
			if !reflect.DeepEqual(targets(got), tt.want) {
				t.Errorf("order = %v, want %v", targets(got), tt.want)
			}
			if !reflect.DeepEqual(args, tt.wantArgs) {
				t.Errorf("intn args = %v, want %v", args, tt.wantArgs)
			}
		})
	}
}

func TestNotOffered(t *testing.T) {
	tests := []struct {
		name string
		recs []*net.SRV
		want bool
	}{
		{"lone dot", []*net.SRV{srv(".", 0, 0)}, true},
		{"lone empty target", []*net.SRV{srv("", 0, 0)}, true},
		{"a real target", []*net.SRV{srv("xmpp.example.test.", 0, 5)}, false},
		{"dot beside a real target", []*net.SRV{srv(".", 0, 0), srv("xmpp.example.test.", 0, 5)}, false},
		{"no records", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resolve.NotOffered(tt.recs); got != tt.want {
				t.Errorf("NotOffered = %v, want %v", got, tt.want)
			}
		})
	}
}

const testZone = `
$TTL 300
@                        IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 60
host                     IN A    192.0.2.1
host                     IN AAAA 2001:db8::1
v4only                   IN A    192.0.2.2
_xmpp-server._tcp        IN SRV  0 5 5269 host.example.test.
_xmpp-server._tcp.off    IN SRV  0 0 0 .
`

func start(t *testing.T, extra string) (*dnstest.Server, *resolve.Resolver) {
	t.Helper()
	s := dnstest.Start(t, "127.0.0.1:0", "example.test.", testZone+extra)
	r, err := resolve.New(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return s, r
}

// An answer too large for UDP comes back truncated; Query must retry over
// TCP and return every record.
func TestQueryTCPFallback(t *testing.T) {
	const n = 120 // about 1,900 bytes: over the 1,232-byte EDNS size Query asks for
	var zone strings.Builder
	for i := range n {
		fmt.Fprintf(&zone, "many IN A 198.51.100.%d\n", i+1)
	}
	s, r := start(t, zone.String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	m := new(dns.Msg)
	m.SetQuestion("many.example.test.", dns.TypeA)
	m.SetEdns0(1232, false)
	udp, _, err := (&dns.Client{Net: "udp"}).ExchangeContext(ctx, m, s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if !udp.Truncated || len(udp.Answer) >= n {
		t.Fatalf("UDP answer: TC=%v with %d records; the test needs a truncated one", udp.Truncated, len(udp.Answer))
	}

	rrs, err := r.Query(ctx, "many.example.test", dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	if len(rrs) != n {
		t.Errorf("Query returned %d records, want all %d (UDP alone gave %d)", len(rrs), n, len(udp.Answer))
	}
}

func TestIsNotFound(t *testing.T) {
	_, r := start(t, "")
	blackHole, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blackHole.Close()
	silent, err := resolve.New(blackHole.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		r         *resolve.Resolver
		qname     string
		qtype     uint16
		notFound  bool
		rcode     int
		transport bool // Err set: no answer at all
	}{
		{"NXDOMAIN", r, "absent.example.test", dns.TypeA, true, dns.RcodeNameError, false},
		{"NODATA", r, "v4only.example.test", dns.TypeAAAA, true, dns.RcodeSuccess, false},
		{"timeout", silent, "host.example.test", dns.TypeA, false, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_, err := tt.r.Query(ctx, tt.qname, tt.qtype)
			if got := resolve.IsNotFound(err); got != tt.notFound {
				t.Errorf("IsNotFound(%v) = %v, want %v", err, got, tt.notFound)
			}
			var e *resolve.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %T %v, want *resolve.Error", err, err)
			}
			if e.Server != tt.r.Servers[0] {
				t.Errorf("Server = %q, want %q", e.Server, tt.r.Servers[0])
			}
			if tt.transport {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Errorf("err = %v, want a timeout net.Error inside", err)
				}
				return
			}
			if e.Err != nil || e.Rcode != tt.rcode {
				t.Errorf("Rcode = %s, Err = %v; want %s and no transport error", dns.RcodeToString[e.Rcode], e.Err, dns.RcodeToString[tt.rcode])
			}
		})
	}
	if resolve.IsNotFound(nil) || resolve.IsNotFound(errors.New("other")) {
		t.Error("IsNotFound is true for nil or a foreign error")
	}
}

func TestSRVAndAddrs(t *testing.T) {
	_, r := start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	recs, err := r.SRV(ctx, "xmpp-server", "tcp", "example.test")
	if err != nil || len(recs) != 1 || recs[0].Target != "host.example.test." || recs[0].Port != 5269 || resolve.NotOffered(recs) {
		t.Errorf("SRV = %v, %v; want host.example.test.:5269", recs, err)
	}
	recs, err = r.SRV(ctx, "xmpp-server", "tcp", "off.example.test")
	if err != nil || !resolve.NotOffered(recs) {
		t.Errorf("SRV of off.example.test = %v, %v; want the lone dot", recs, err)
	}

	tests := []struct {
		host string
		want []netip.Addr
	}{
		{"host.example.test", []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}},
		{"v4only.example.test", []netip.Addr{netip.MustParseAddr("192.0.2.2")}},
		{"[2001:db8::9]", []netip.Addr{netip.MustParseAddr("2001:db8::9")}},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got, err := r.Addrs(ctx, tt.host)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Addrs = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	if _, err := r.Addrs(ctx, "absent.example.test"); !resolve.IsNotFound(err) {
		t.Errorf("Addrs of an absent name: err = %v, want not found", err)
	}
}

// rcodeServer answers every query with rcode and counts the queries.
func rcodeServer(t *testing.T, rcode int) (addr string, queries *atomic.Int32) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	queries = new(atomic.Int32)
	s := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		queries.Add(1)
		m := new(dns.Msg)
		m.SetRcode(r, rcode)
		w.WriteMsg(m)
	})}
	go s.ActivateAndServe()
	t.Cleanup(func() { s.Shutdown() })
	return pc.LocalAddr().String(), queries
}

// SERVFAIL or REFUSED from one server sends the question on to the next;
// an answer (records, NODATA or NXDOMAIN) ends the search.
func TestQueryNextServer(t *testing.T) {
	good, _ := start(t, "")
	servfail, _ := rcodeServer(t, dns.RcodeServerFailure)
	refused, _ := rcodeServer(t, dns.RcodeRefused)
	tests := []struct {
		name      string
		servers   []string
		qname     string
		wantRRs   int
		wantRcode int    // when wantRRs is 0
		wantSrv   string // the server the error names
		after     bool   // the sentinel after the servers must not be asked
	}{
		{"SERVFAIL then an answer", []string{servfail, good.Addr}, "host.example.test", 1, 0, "", false},
		{"REFUSED then an answer", []string{refused, good.Addr}, "host.example.test", 1, 0, "", false},
		{"NXDOMAIN ends the search", []string{good.Addr}, "absent.example.test", 0, dns.RcodeNameError, good.Addr, true},
		{"NODATA ends the search", []string{good.Addr}, "v4only.example.test", 0, dns.RcodeSuccess, good.Addr, true},
		{"records end the search", []string{good.Addr}, "host.example.test", 1, 0, "", true},
		{"all fail: the last error", []string{servfail, refused}, "host.example.test", 0, dns.RcodeRefused, refused, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sentinel, asked := rcodeServer(t, dns.RcodeServerFailure)
			servers := tt.servers
			if tt.after {
				servers = append(servers, sentinel)
			}
			r := &resolve.Resolver{Servers: servers, Timeout: 2 * time.Second}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			qtype := dns.TypeA
			if strings.HasPrefix(tt.qname, "v4only") {
				qtype = dns.TypeAAAA
			}
			rrs, err := r.Query(ctx, tt.qname, qtype)
			if n := asked.Load(); n != 0 {
				t.Errorf("the server after a final answer was asked %d times", n)
			}
			if tt.wantRRs > 0 {
				if err != nil || len(rrs) != tt.wantRRs {
					t.Errorf("Query = %v, %v; want %d records", rrs, err, tt.wantRRs)
				}
				return
			}
			var e *resolve.Error
			if !errors.As(err, &e) || e.Err != nil || e.Rcode != tt.wantRcode || e.Server != tt.wantSrv {
				t.Errorf("err = %v, want %s from %s", err, dns.RcodeToString[tt.wantRcode], tt.wantSrv)
			}
		})
	}
}
