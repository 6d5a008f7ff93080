package cmd

// Performance of `xgw check` (issue 2, "Done when"): a full run against the
// healthy loopback deployment of scenario_test.go takes < 1 s; against
// black-holed targets it ends within --timeout + 0.5 s. Each benchmark
// reports the mean (s/op) and the slowest run (worst-s) and fails when the
// slowest run is over its budget.
//
//	bash scripts/test.sh -run '^$' -bench Check -benchtime 5x ./cmd/

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/report"
)

// Black-holed targets: they accept TCP and never answer.
const (
	silentEdgeIP = "127.88.1.1" // :5061
	silentXMPPIP = "127.88.1.2" // :5269, the external FQDN and public_ip
)

func BenchmarkCheckHealthy(b *testing.B) {
	d := newDeployment(b)
	cfg, dns := d.render(b, b.TempDir(), scenario{})
	args := []string{"check", "-c", cfg, "-o", "json", "--dns-server", dns}
	// It must measure a healthy run: all green but the opt-in peer probe.
	if code, out, errOut := run(b, nil, args...); code != report.ExitOK {
		b.Fatalf("exit code %d; stderr %s\n%s", code, errOut, out)
	} else if rep := decodeReport(b, out); rep.Counts["fail"] > 0 || !slices.Equal(rep.with("warn"), hostSuffixWarn(b)) {
		b.Fatalf("the healthy lab is not all green:\n%s", rep.notPassed())
	}
	benchCheck(b, args, report.ExitOK, time.Second)
}

func BenchmarkCheckBlackholed(b *testing.B) {
	const timeout = time.Second
	budget := timeout + 500*time.Millisecond
	d := newDeployment(b)
	b.Run("dns", func(b *testing.B) {
		cfg, _ := d.render(b, b.TempDir(), scenario{})
		benchCheck(b, []string{"check", "-c", cfg, "-o", "json", "--timeout", timeout.String(), "--dns-server", silentDNS(b)},
			report.ExitFailed, budget)
	})
	b.Run("edge and xmpp", func(b *testing.B) {
		silentListener(b, silentEdgeIP+":5061")
		silentListener(b, silentXMPPIP+":5269")
		cfg, dns := d.render(b, b.TempDir(), scenario{params: func(p *labParams) {
			p.EdgeIP, p.PublicIP = silentEdgeIP, silentXMPPIP
		}})
		benchCheck(b, []string{"check", "-c", cfg, "-o", "json", "--timeout", timeout.String(), "--dns-server", dns},
			report.ExitFailed, budget)
	})
}

// benchCheck runs `xgw check` with args b.N times, each ending with code,
// and fails the benchmark when the slowest run exceeds budget.
func benchCheck(b *testing.B, args []string, code int, budget time.Duration) {
	b.Helper()
	var total, worst time.Duration
	n, last := 0, ""
	for b.Loop() {
		start := time.Now()
		got, out, errOut := run(b, nil, args...)
		last = out
		d := time.Since(start)
		if got != code {
			b.Fatalf("exit code %d, want %d; stderr %s\n%s", got, code, errOut, out)
		}
		total, worst, n = total+d, max(worst, d), n+1
	}
	b.Logf("results of the last run that did not pass:\n%s", decodeReport(b, last).notPassed())
	b.ReportMetric(total.Seconds()/float64(n), "s/op")
	b.ReportMetric(worst.Seconds(), "worst-s")
	if worst > budget {
		b.Errorf("slowest run took %v, over the budget of %v", worst, budget)
	}
}

// silentDNS is a DNS server address where nothing ever answers: a UDP
// socket that is never read and a TCP listener that never answers.
func silentDNS(tb testing.TB) string {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { pc.Close() })
	return silentListener(tb, pc.LocalAddr().String())
}

// silentListener accepts TCP connections on addr and never answers, until
// the test ends: a black-holed Edge or XMPP server.
func silentListener(tb testing.TB, addr string) string {
	tb.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	conns := make(chan net.Conn, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case conns <- c: // held open, never read
			default:
				c.Close()
			}
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-conns:
				c.Close()
			default:
				return
			}
		}
	})
	return ln.Addr().String()
}
