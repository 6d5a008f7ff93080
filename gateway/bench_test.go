package gateway_test

// BenchmarkRelaySIPToXMPP pushes SIP MESSAGEs through a running gateway to
// an XMPP peer on loopback, one way and there and back (the peer echoes
// messages to echo<k>@peer.test, 64 conversations, which the gateway relays
// to the Edge):
//
//	sipgo UA (this process) --TCP--> xgw (child process) --s2s, dialback--> xmpp.Server "peer.test" (this process)
//	sipgo UA as the Edge    <--TCP-- xgw                  <--s2s, dialback-- (the echo)
//
// The gateway runs in a child process (this test binary re-executed, see
// TestMain) so that its CPU time can be read alone from /proc/PID/stat
// (utime+stime, the figures getrusage reports for a process) before and
// after the measured messages; the sender and the peer stay out of it.
//
// Run with a fixed count, so the CPU figure covers enough ticks:
//
//	go test -run '^$' -bench RelaySIPToXMPP -benchtime 20000x ./gateway/

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/xgw-gateway/xgw/gateway"
	"github.com/xgw-gateway/xgw/gateway/config"
	gwsip "github.com/xgw-gateway/xgw/gateway/sip"
	"github.com/xgw-gateway/xgw/gateway/xmpp"
	"github.com/xgw-gateway/xgw/internal/dnstest"
	"github.com/xgw-gateway/xgw/internal/resolve"
)

// benchChildEnv makes the test binary run a gateway instead of the tests.
const benchChildEnv = "XGW_BENCH_GATEWAY_DNS"

// benchEdgeEnv tells the child where the Edge listens (HOST:PORT, TCP).
const benchEdgeEnv = "XGW_BENCH_EDGE"

// benchProfileEnv names a file for the gateway child's CPU profile.
const benchProfileEnv = "XGW_BENCH_CPUPROFILE"

func TestMain(m *testing.M) {
	if dnsAddr := os.Getenv(benchChildEnv); dnsAddr != "" {
		os.Exit(benchGatewayChild(dnsAddr))
	}
	os.Exit(m.Run())
}

// benchGatewayChild serves litware.test on the s2s listener inherited as
// file descriptor 3 and a SIP TCP listener on 127.0.0.1:0, whose address it
// prints, until SIGTERM.
func benchGatewayChild(dnsAddr string) int {
	ln, err := net.FileListener(os.NewFile(3, "xmpp-listener"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench gateway:", err)
		return 1
	}
	edgeHost, edgePort, err := net.SplitHostPort(os.Getenv(benchEdgeEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench gateway:", benchEdgeEnv, err)
		return 1
	}
	port, _ := strconv.Atoi(edgePort)
	cfg := &config.Config{
		SIP: config.SIP{Domains: []string{"litware.test"}, Listen: "127.0.0.1:0",
			Edge: config.Edge{Host: edgeHost, Port: port, Transport: "tcp"}},
		XMPP: config.XMPP{Federation: []config.Partner{{Domain: "peer.test", Auth: config.AuthDialback}}},
	}
	srv, err := gateway.New(cfg, gateway.WithXMPPListener(ln), gateway.WithDNSServer(dnsAddr),
		gateway.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
		gateway.WithSIPConfig(func(c *gwsip.Config) { c.KeepaliveInterval = -1 }))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench gateway:", err)
		return 1
	}
	if err := srv.Listen(); err != nil {
		fmt.Fprintln(os.Stderr, "bench gateway:", err)
		return 1
	}
	if path := os.Getenv(benchProfileEnv); path != "" {
		// The gateway's own CPU profile: XGW_BENCH_CPUPROFILE=FILE.
		f, err := os.Create(path)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	fmt.Printf("SIP %s\n", srv.SIPAddr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := srv.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench gateway:", err)
		return 1
	}
	return 0
}

// arrivals notes when each numbered message arrived somewhere.
type arrivals struct {
	mu     sync.Mutex
	at     map[int]time.Time
	notify chan struct{}
}

func newArrivals() *arrivals {
	return &arrivals{at: map[int]time.Time{}, notify: make(chan struct{}, 1)}
}

// note records message n, numbered by its Call-ID or thread "b-<n>".
func (a *arrivals) note(id []byte) {
	n, err := strconv.Atoi(string(id))
	if err != nil {
		return
	}
	a.mu.Lock()
	a.at[n] = time.Now()
	a.mu.Unlock()
	select {
	case a.notify <- struct{}{}:
	default:
	}
}

// wait returns the arrival times of ns, failing b after d.
func (a *arrivals) wait(b *testing.B, ns []int, d time.Duration) []time.Time {
	deadline := time.Now().Add(d)
	for {
		a.mu.Lock()
		out := make([]time.Time, len(ns))
		missing := 0
		for i, n := range ns {
			if out[i] = a.at[n]; out[i].IsZero() {
				missing++
			}
		}
		a.mu.Unlock()
		if missing == 0 {
			return out
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d messages never arrived", missing, len(ns))
		}
		select {
		case <-a.notify:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// benchPeer is the XMPP side: it notes each message and sends those to
// echo@peer.test back to their sender.
type benchPeer struct {
	srv     *xmpp.Server
	arrived *arrivals
}

func (p *benchPeer) HandleInbound(ctx context.Context, st *xmpp.Stanza) error {
	// The thread is the Call-ID "b-<n>" (RFC 7572 §5).
	_, rest, ok := bytes.Cut(st.Inner, []byte("<thread>b-"))
	if !ok {
		return nil
	}
	num, _, _ := bytes.Cut(rest, []byte("<"))
	p.arrived.note(num)
	if strings.HasPrefix(st.To.Localpart(), "echo") {
		return p.srv.Send(ctx, &xmpp.Stanza{Name: "message", From: st.To, To: st.From, Type: "chat", Inner: st.Inner})
	}
	return nil
}

// cpuTicks reads utime+stime of pid in clock ticks (USER_HZ, 100 on Linux).
func cpuTicks(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st
}

const userHZ = 100

func BenchmarkRelaySIPToXMPP(b *testing.B) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		b.Skip("needs /proc to read the gateway's CPU time")
	}
	gwLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	peerLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	zone := fmt.Sprintf(`$ORIGIN test.
peer                      60 IN A   127.0.0.1
_xmpp-server._tcp.peer    60 IN SRV 0 5 %d peer.test.
litware                   60 IN A   127.0.0.1
_xmpp-server._tcp.litware 60 IN SRV 0 5 %d litware.test.
`, peerLn.Addr().(*net.TCPAddr).Port, gwLn.Addr().(*net.TCPAddr).Port)
	dns := dnstest.Start(b, "127.0.0.1:0", "test", zone)
	res, err := resolve.New(dns.Addr)
	if err != nil {
		b.Fatal(err)
	}

	peer := &benchPeer{arrived: newArrivals()}
	ps, err := xmpp.New(xmpp.Config{Domains: []string{"peer.test"}, Resolver: res, Handler: peer,
		Federation: []config.Partner{{Domain: "litware.test", Auth: config.AuthDialback}}})
	if err != nil {
		b.Fatal(err)
	}
	peer.srv = ps
	go ps.Serve(context.Background(), peerLn)
	b.Cleanup(func() { ps.Close() })

	// The sender and the Edge: one sipgo user agent.
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("bench"), sipgo.WithUserAgentHostname("litware.test"),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(slog.New(slog.DiscardHandler))),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(slog.New(slog.DiscardHandler))))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ua.Close() })
	client, err := sipgo.NewClient(ua, sipgo.WithClientLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	edge, err := sipgo.NewServer(ua, sipgo.WithServerLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	atEdge := newArrivals()
	edge.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		if cid, ok := strings.CutPrefix(callIDOf(req), "b-"); ok {
			atEdge.note([]byte(cid))
		}
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	edgeLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go edge.ServeTCP(edgeLn)
	b.Cleanup(func() { edgeLn.Close() })

	// The gateway, in a child process that inherits its s2s listener.
	lnFile, err := gwLn.(*net.TCPListener).File()
	if err != nil {
		b.Fatal(err)
	}
	gwLn.Close()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), benchChildEnv+"="+dns.Addr, benchEdgeEnv+"="+edgeLn.Addr().String())
	child.ExtraFiles = []*os.File{lnFile}
	child.Stderr = os.Stderr
	stdout, err := child.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	lnFile.Close()
	exited := make(chan struct{})
	b.Cleanup(func() {
		child.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			child.Process.Kill()
			<-exited
			b.Error("the gateway did not stop within 15 s of SIGTERM")
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	go func() { child.Wait(); close(exited) }()
	sipAddr, ok := strings.CutPrefix(strings.TrimSpace(line), "SIP ")
	if err != nil || !ok {
		b.Fatalf("gateway child said %q: %v", line, err)
	}

	var seq atomic.Int64
	send := func(ctx context.Context, user string) (int, time.Time, error) {
		n := int(seq.Add(1))
		if user == "echo" {
			// 64 conversations, as many users talking at once would be:
			// messages of one conversation go to the Edge one at a time.
			user += strconv.Itoa(n % 64)
		}
		to := sip.Uri{Scheme: "sip", User: user, Host: "peer.test"}
		req := sip.NewRequest(sip.MESSAGE, to)
		from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "litware.test"}, Params: sip.NewParams()}
		from.Params.Add("tag", sip.GenerateTagN(8))
		req.AppendHeader(from)
		req.AppendHeader(&sip.ToHeader{Address: to, Params: sip.NewParams()})
		cid := sip.CallIDHeader("b-" + strconv.Itoa(n))
		req.AppendHeader(&cid)
		ct := sip.ContentTypeHeader("text/plain;charset=UTF-8")
		req.AppendHeader(&ct)
		req.SetBody([]byte("benchmark message " + strconv.Itoa(n) + " — привет 世界"))
		req.SetTransport("TCP")
		req.SetDestination(sipAddr)
		start := time.Now()
		res, err := client.Do(ctx, req)
		if err == nil && res.StatusCode != 200 {
			err = fmt.Errorf("MESSAGE %d answered %d %s", n, res.StatusCode, res.Reason)
		}
		return n, start, err
	}
	// Warm up: the first echo opens the s2s streams (dialback both ways).
	ctx := context.Background()
	n, _, err := send(ctx, "echo")
	if err != nil {
		b.Fatal(err)
	}
	atEdge.wait(b, []int{n}, 10*time.Second)

	for _, c := range []struct {
		name   string
		user   string    // echo: there and back
		at     *arrivals // where a message counts as arrived
		window int
	}{
		{"one-way/inflight=1", "bob", peer.arrived, 1},
		{"one-way/inflight=32", "bob", peer.arrived, 32},
		{"round-trip/inflight=1", "echo", atEdge, 1},
		{"round-trip/inflight=32", "echo", atEdge, 32},
	} {
		b.Run(c.name, func(b *testing.B) {
			window := c.window
			ids := make([]int, b.N)
			starts := make([]time.Time, b.N)
			var next atomic.Int64
			var firstErr atomic.Value
			cpu0 := cpuTicks(b, child.Process.Pid)
			b.ResetTimer()
			t0 := time.Now()
			var wg sync.WaitGroup
			for range window {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1)) - 1
						if i >= b.N {
							return
						}
						rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
						n, start, err := send(rctx, c.user)
						cancel()
						if err != nil {
							firstErr.CompareAndSwap(nil, err)
						}
						ids[i], starts[i] = n, start
					}
				}()
			}
			wg.Wait()
			arrived := c.at.wait(b, ids, 30*time.Second)
			elapsed := time.Since(t0)
			b.StopTimer()
			cpu1 := cpuTicks(b, child.Process.Pid)
			if err, _ := firstErr.Load().(error); err != nil {
				b.Fatal(err)
			}
			lat := make([]time.Duration, b.N)
			for i := range lat {
				lat[i] = arrived[i].Sub(starts[i])
			}
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(lat[b.N/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[min(b.N-1, b.N*99/100)].Microseconds()), "p99-µs")
			b.ReportMetric(float64(cpu1-cpu0)*1e6/userHZ/float64(b.N), "gw-cpu-µs/msg")
		})
	}
}

func callIDOf(req *sip.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}
