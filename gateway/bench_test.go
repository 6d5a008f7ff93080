package gateway_test

// BenchmarkRelaySIPToXMPP pushes SIP MESSAGEs through a running gateway to
// an XMPP peer on loopback:
//
//	sipgo UA (this process) --TCP--> xgw (child process) --s2s, dialback--> xmpp.Server "peer.test" (this process)
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
	cfg := &config.Config{
		SIP: config.SIP{Domains: []string{"litware.test"}, Listen: "127.0.0.1:0",
			Edge: config.Edge{Host: "127.0.0.1", Port: 9, Transport: "tcp"}},
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

// benchPeer is the XMPP side: it notes when each message arrives.
type benchPeer struct {
	mu      sync.Mutex
	arrived map[int]time.Time
	notify  chan struct{}
}

func (p *benchPeer) HandleInbound(_ context.Context, st *xmpp.Stanza) error {
	// The thread is the Call-ID "b-<n>" (RFC 7572 §5).
	_, rest, ok := bytes.Cut(st.Inner, []byte("<thread>b-"))
	if !ok {
		return nil
	}
	num, _, _ := bytes.Cut(rest, []byte("<"))
	n, err := strconv.Atoi(string(num))
	if err != nil {
		return nil
	}
	p.mu.Lock()
	p.arrived[n] = time.Now()
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
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

	peer := &benchPeer{arrived: map[int]time.Time{}, notify: make(chan struct{}, 1)}
	ps, err := xmpp.New(xmpp.Config{Domains: []string{"peer.test"}, Resolver: res, Handler: peer,
		Federation: []config.Partner{{Domain: "litware.test", Auth: config.AuthDialback}}})
	if err != nil {
		b.Fatal(err)
	}
	go ps.Serve(context.Background(), peerLn)
	b.Cleanup(func() { ps.Close() })

	// The gateway, in a child process that inherits its s2s listener.
	lnFile, err := gwLn.(*net.TCPListener).File()
	if err != nil {
		b.Fatal(err)
	}
	gwLn.Close()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), benchChildEnv+"="+dns.Addr)
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
	var seq atomic.Int64
	send := func(ctx context.Context) (int, time.Time, error) {
		n := int(seq.Add(1))
		to := sip.Uri{Scheme: "sip", User: "bob", Host: "peer.test"}
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
	waitArrived := func(ns []int, d time.Duration) []time.Time {
		deadline := time.Now().Add(d)
		for {
			peer.mu.Lock()
			out := make([]time.Time, len(ns))
			missing := 0
			for i, n := range ns {
				if out[i] = peer.arrived[n]; out[i].IsZero() {
					missing++
				}
			}
			peer.mu.Unlock()
			if missing == 0 {
				return out
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d messages never reached the XMPP peer", missing, len(ns))
			}
			select {
			case <-peer.notify:
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	// Warm up: the first message opens the s2s stream (dialback both ways).
	ctx := context.Background()
	n, _, err := send(ctx)
	if err != nil {
		b.Fatal(err)
	}
	waitArrived([]int{n}, 10*time.Second)

	for _, window := range []int{1, 32} {
		b.Run(fmt.Sprintf("inflight=%d", window), func(b *testing.B) {
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
						n, start, err := send(rctx)
						cancel()
						if err != nil {
							firstErr.CompareAndSwap(nil, err)
						}
						ids[i], starts[i] = n, start
					}
				}()
			}
			wg.Wait()
			arrived := waitArrived(ids, 30*time.Second)
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
