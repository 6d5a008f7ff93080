package xmpp

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/internal/certtest"
)

// BenchmarkIdleInboundStream measures what an idle, dialback-authenticated
// inbound stream costs in Go heap and goroutine stacks (issue 3 budget:
// ~100 KiB, 10,000 streams under 1 GiB). The figure includes the test's
// own client conn, so it is an upper bound. Run with a fixed count:
//
//	go test -run - -bench IdleInboundStream -benchtime 1000x ./gateway/xmpp/
func BenchmarkIdleInboundStream(b *testing.B) {
	ca := certtest.NewCA(b, "ca")
	certB := ca.Issue(b, certtest.Leaf{DNSNames: []string{"b.test"}, ECDSA: true})
	limits := func(c *Config) {
		c.MaxStreams, c.MaxStreamsPerPeer = 1<<20, 1<<20
		c.IdleTimeout = time.Hour
	}
	b.Run("dialback", func(b *testing.B) {
		f := newFed(b)
		a := f.add(peerOpts{domains: []string{"a.test"}, open: true, mod: limits})
		bsrv := f.add(peerOpts{domains: []string{"b.test"}, open: true})
		measureIdle(b, func() net.Conn {
			c, err := net.Dial("tcp", a.addr)
			if err != nil {
				b.Fatal(err)
			}
			r := bufio.NewReader(c)
			io.WriteString(c, hdr("b.test", "a.test"))
			id := attrOf(readUntil(b, c, r, "</stream:features>"), "<stream:stream", "id")
			io.WriteString(c, "<db:result from='b.test' to='a.test'>"+dialbackKey(hashSecret(bsrv.secret), "a.test", "b.test", id)+"</db:result>")
			readUntil(b, c, r, "type='valid'/>")
			return c
		})
	})
	b.Run("direct-tls-sasl-external", func(b *testing.B) {
		f := newFed(b)
		a := f.add(peerOpts{domains: []string{"a.test"}, open: true, mod: limits, tls: tlsFor(b, ca, "a.test", ca), directTLS: true})
		measureIdle(b, func() net.Conn {
			c, err := tls.Dial("tcp", a.addr, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{certB.TLS}})
			if err != nil {
				b.Fatal(err)
			}
			r := bufio.NewReader(c)
			io.WriteString(c, hdr("b.test", "a.test"))
			readUntil(b, c, r, "</stream:features>")
			io.WriteString(c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
			readUntil(b, c, r, "<success")
			io.WriteString(c, hdr("b.test", "a.test"))
			readUntil(b, c, r, "</stream:features>")
			return c
		})
	})
}

// measureIdle opens b.N streams with open and reports the memory they hold.
func measureIdle(b *testing.B, open func() net.Conn) {
	conns := make([]net.Conn, 0, b.N)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	before := memInUse()
	b.ResetTimer()
	for range b.N {
		conns = append(conns, open())
	}
	b.StopTimer()
	time.Sleep(200 * time.Millisecond) // verify connections finish closing
	after := memInUse()
	b.ReportMetric(float64(after-before)/float64(b.N), "bytes/stream")
}

func memInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}

func readUntil(b *testing.B, c net.Conn, r *bufio.Reader, sub string) string {
	var sb strings.Builder
	c.SetReadDeadline(time.Now().Add(waitFor))
	for !strings.Contains(sb.String(), sub) {
		ch, err := r.ReadByte()
		if err != nil {
			b.Fatalf("waiting for %q: %v (got %s)", sub, err, sb.String())
		}
		sb.WriteByte(ch)
	}
	return sb.String()
}

// BenchmarkIdleStreamPair measures one idle outbound stream of ours plus
// the peer's inbound stream for it (both servers run in this process), for
// b.N distinct local domains sending to one remote domain.
//
//	go test -run - -bench IdleStreamPair -benchtime 500x ./gateway/xmpp/
func BenchmarkIdleStreamPair(b *testing.B) {
	f := newFed(b)
	domains := make([]string, b.N)
	for i := range domains {
		domains[i] = fmt.Sprintf("d%d.test", i)
	}
	limits := func(c *Config) {
		c.MaxStreams, c.MaxStreamsPerPeer = 1<<20, 1<<20
		c.IdleTimeout = time.Hour
	}
	a := f.add(peerOpts{domains: domains, open: true, mod: limits})
	remote := f.add(peerOpts{domains: []string{"b.test"}, open: true, mod: limits})
	before := memInUse()
	b.ResetTimer()
	for _, d := range domains {
		if err := a.srv.Send(context.Background(), mustStanza(b, `<message from='u@`+d+`' to='bob@b.test'/>`)); err != nil {
			b.Fatal(err)
		}
		select {
		case <-remote.inbox:
		case <-time.After(waitFor):
			b.Fatalf("no delivery from %s", d)
		}
	}
	b.StopTimer()
	time.Sleep(200 * time.Millisecond) // verify connections finish closing
	after := memInUse()
	b.ReportMetric(float64(after-before)/float64(b.N), "bytes/pair")
}
