package sip_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	gwsip "github.com/xgw-gateway/xgw/gateway/sip"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchHandler answers MESSAGE 200 without recording.
type benchHandler struct{ *handler }

func (benchHandler) HandleMessage(context.Context, *sip.Request) (int, string) { return 200, "" }

// Inbound MESSAGEs over one loopback TCP connection, a sipgo client in the
// same process playing the Edge: the figure covers both ends.
func BenchmarkInboundMessage(b *testing.B) {
	p := newPKI(b)
	ed := startEdge(b, p, "tcp", nil, nil)
	ed.serve()
	gateway(b, p, ed, benchHandler{newHandler()}, func(c *gwsip.Config) { c.MaxConcurrent = 4096 })
	body := []byte("Привет 世界 🎉 hello")
	send := func() {
		req := ed.request(sip.MESSAGE, "sip:romeo@xmpp.test")
		ct := sip.ContentTypeHeader("text/plain;charset=UTF-8")
		req.AppendHeader(&ct)
		req.SetBody(body)
		res, err := ed.do(req)
		if err != nil || res.StatusCode != 200 {
			b.Errorf("MESSAGE: %v %v", res, err)
		}
	}
	send() // connect outside the timing
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			send()
		}
	})
	cpu, wall := cpuTime()-cpu0, time.Since(t0)
	b.ReportMetric(float64(b.N)/wall.Seconds(), "msg/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
}

// Outbound MESSAGEs through the Edge (a sipgo server in the same process)
// over one reused loopback TCP connection.
func BenchmarkOutboundMessage(b *testing.B) {
	p := newPKI(b)
	ed := startEdge(b, p, "tcp", nil, nil)
	ed.srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	ed.serve()
	ep, _, _ := gateway(b, p, ed, benchHandler{newHandler()}, nil)
	m := gwsip.OutboundMessage{
		From: uri(b, "sip:romeo@xmpp.test"), To: uri(b, "sip:alice@litware.test"),
		ContentType: "text/plain;charset=UTF-8", Body: []byte("Привет 世界 🎉 hello"),
	}
	send := func() {
		res, err := ep.SendMessage(context.Background(), m)
		if err != nil || res.StatusCode != 200 {
			b.Errorf("MESSAGE: %v %v", res, err)
		}
	}
	send()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			send()
		}
	})
	cpu, wall := cpuTime()-cpu0, time.Since(t0)
	b.ReportMetric(float64(b.N)/wall.Seconds(), "msg/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
}
