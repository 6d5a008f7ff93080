package sip_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	gwsip "github.com/xgw-gateway/xgw/gateway/sip"
)

// Inbound MESSAGE: the handler's answer is the final response; a slow
// handler gets 504 sent for it, never silence.
func TestInboundMessage(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tcp", nil, nil)
	ed.serve()
	h := newHandler()
	var answer atomic.Value // func(ctx) (int, string)
	h.message = func(ctx context.Context, req *sip.Request) (int, string) {
		return answer.Load().(func(context.Context) (int, string))(ctx)
	}
	gateway(t, p, ed, h, func(c *gwsip.Config) { c.HandlerTimeout = 300 * time.Millisecond })

	// release ends the handler that ignores its deadline; closed before
	// the gateway shuts down.
	release := make(chan struct{})
	defer close(release)

	body := "Привет, 世界 مرحبا e\u0301 🎉"
	tests := []struct {
		name       string
		answer     func(context.Context) (int, string)
		mod        func(*sip.Request)
		wantStatus int
		wantReason string
		reaches    bool // the handler sees the request
	}{
		{"delivered", func(context.Context) (int, string) { return 200, "" }, nil, 200, "OK", true},
		{"unknown user", func(context.Context) (int, string) { return 404, "No Such XMPP User" }, nil, 404, "No Such XMPP User", true},
		{"handler too slow", func(ctx context.Context) (int, string) {
			<-ctx.Done()
			time.Sleep(50 * time.Millisecond)
			return 200, ""
		}, nil, 504, "Server Time-out", true},
		{"handler ignores its deadline", func(context.Context) (int, string) {
			// Still blocked when the Edge's 3 s wait ends unless the 504
			// goes out at the deadline rather than when the handler returns.
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
			return 200, ""
		}, nil, 504, "Server Time-out", true},
		{"invalid status from handler", func(context.Context) (int, string) { return 99, "" }, nil, 500, "Server Internal Error", true},
		{"body without Content-Type", nil, func(r *sip.Request) { r.RemoveHeader("Content-Type") }, 400, "Missing Content-Type", false},
		{"inside an unknown dialog", nil, func(r *sip.Request) { r.To().Params.Add("tag", "abc") }, 481, "Call/Transaction Does Not Exist", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answer.Store(tt.answer)
			if tt.answer == nil {
				answer.Store(func(context.Context) (int, string) { return 200, "" })
			}
			req := ed.request(sip.MESSAGE, "sip:romeo@xmpp.test")
			ct := sip.ContentTypeHeader("text/plain;charset=UTF-8")
			req.AppendHeader(&ct)
			req.SetBody([]byte(body))
			if tt.mod != nil {
				tt.mod(req)
			}
			res := ed.mustDo(req)
			if res.StatusCode != tt.wantStatus || res.Reason != tt.wantReason {
				t.Errorf("response %d %q, want %d %q", res.StatusCode, res.Reason, tt.wantStatus, tt.wantReason)
			}
			if !tt.reaches {
				select {
				case <-h.messages:
					t.Error("the handler saw a request that should have been refused")
				default:
				}
				return
			}
			got := next(t, h.messages, "MESSAGE at the handler")
			if string(got.req.Body()) != body {
				t.Errorf("body %q, want %q", got.req.Body(), body)
			}
		})
	}
}

// Outbound MESSAGE carries what the caller gave; no answer and no Edge
// come back as typed errors.
func TestOutboundMessage(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tcp", nil, nil)
	got := make(chan *sip.Request, 4)
	ed.srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		got <- req
		if string(req.Body()) == "ignore me" {
			return // no response: the gateway must time out
		}
		tx.Respond(sip.NewResponseFromRequest(req, 480, "Temporarily Unavailable", nil))
	})
	ed.serve()
	ep, logs, _ := gateway(t, p, ed, newHandler(), nil)

	t.Run("fields and final response", func(t *testing.T) {
		res, err := ep.SendMessage(context.Background(), gwsip.OutboundMessage{
			From: uri(t, "sip:romeo@xmpp.test"), To: uri(t, "sip:alice@litware.test"),
			CallID: "thread-42@xgw", CSeq: 7,
			ContentType: "text/plain;charset=UTF-8", Body: []byte("wherefore 🌹"),
			Headers: []sip.Header{sip.NewHeader("Subject", "balcony")},
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 480 {
			t.Errorf("status %d, want the Edge's 480", res.StatusCode)
		}
		req := <-got
		checks := map[string][2]string{
			"Request-URI":  {req.Recipient.String(), "sip:alice@litware.test"},
			"From":         {req.From().Address.String(), "sip:romeo@xmpp.test"},
			"To":           {req.To().Address.String(), "sip:alice@litware.test"},
			"Call-ID":      {req.CallID().Value(), "thread-42@xgw"},
			"CSeq":         {req.CSeq().Value(), "7 MESSAGE"},
			"Content-Type": {req.ContentType().Value(), "text/plain;charset=UTF-8"},
			"Subject":      {hdr(req, "Subject"), "balcony"},
			"body":         {string(req.Body()), "wherefore 🌹"},
		}
		for name, c := range checks {
			if c[0] != c[1] {
				t.Errorf("%s = %q, want %q", name, c[0], c[1])
			}
		}
		if _, ok := req.From().Params.Get("tag"); !ok {
			t.Error("From has no tag")
		}
	})
	t.Run("no final response", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := ep.SendMessage(ctx, gwsip.OutboundMessage{
			From: uri(t, "sip:romeo@xmpp.test"), To: uri(t, "sip:alice@litware.test"),
			ContentType: "text/plain", Body: []byte("ignore me"),
		})
		if !errors.Is(err, gwsip.ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		<-got
	})
	t.Run("body without Content-Type", func(t *testing.T) {
		_, err := ep.SendMessage(context.Background(), gwsip.OutboundMessage{
			From: uri(t, "sip:romeo@xmpp.test"), To: uri(t, "sip:alice@litware.test"), Body: []byte("x"),
		})
		if err == nil {
			t.Fatal("no error for a body without Content-Type")
		}
	})
	t.Run("edge unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close() // nothing listens there now
		h := newHandler()
		cfg := gwsip.Config{
			Listen: "127.0.0.1:0", Edge: gwsip.Edge{Host: "127.0.0.1", Port: port, Transport: "tcp"},
			Handler: h, KeepaliveInterval: -1,
		}
		down, err := gwsip.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer down.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = down.SendMessage(ctx, gwsip.OutboundMessage{From: uri(t, "sip:romeo@xmpp.test"), To: uri(t, "sip:alice@litware.test")})
		if !errors.Is(err, gwsip.ErrTransport) {
			t.Fatalf("err = %v, want ErrTransport", err)
		}
		if want := "127.0.0.1:" + strconv.Itoa(port); !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to name %s", err, want)
		}
	})
	if !strings.Contains(logs.String(), "MESSAGE failed") {
		t.Errorf("no log line for the failed MESSAGE:\n%s", logs.String())
	}
}

// Past MaxConcurrent requests in flight, the answer is 503 with
// Retry-After instead of another goroutine.
func TestConcurrencyLimit(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tcp", nil, nil)
	ed.serve()
	h := newHandler()
	release := make(chan struct{})
	h.message = func(ctx context.Context, req *sip.Request) (int, string) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return 200, ""
	}
	gateway(t, p, ed, h, func(c *gwsip.Config) { c.MaxConcurrent = 1 })
	first := make(chan *sip.Response, 1)
	go func() {
		res, _ := ed.do(ed.request(sip.MESSAGE, "sip:romeo@xmpp.test"))
		first <- res
	}()
	next(t, h.messages, "first MESSAGE")
	res := ed.mustDo(ed.request(sip.MESSAGE, "sip:juliet@xmpp.test"))
	if res.StatusCode != 503 || hdr(res, "Retry-After") == "" {
		t.Errorf("second MESSAGE: %d with Retry-After %q, want 503 with Retry-After", res.StatusCode, hdr(res, "Retry-After"))
	}
	close(release)
	if r := <-first; r == nil || r.StatusCode != 200 {
		t.Errorf("first MESSAGE: %v, want 200", r)
	}
}

// MESSAGE both ways over each transport: TLS for the Edge, TCP and UDP
// for labs.
func TestTransports(t *testing.T) {
	p := newPKI(t)
	for _, tp := range []string{"tls", "tcp", "udp"} {
		t.Run(tp, func(t *testing.T) {
			ed := startEdge(t, p, tp, p.edge, p.edge)
			got := make(chan *sip.Request, 1)
			ed.srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
				got <- req
				tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
			})
			ed.serve()
			h := newHandler()
			ep, _, _ := gateway(t, p, ed, h, nil)

			req := ed.request(sip.MESSAGE, "sip:romeo@xmpp.test")
			ct := sip.ContentTypeHeader("text/plain")
			req.AppendHeader(&ct)
			req.SetBody([]byte("in over " + tp))
			if res := ed.mustDo(req); res.StatusCode != 200 {
				t.Errorf("inbound: %d", res.StatusCode)
			}
			if c := next(t, h.messages, "inbound MESSAGE"); string(c.req.Body()) != "in over "+tp || !strings.EqualFold(c.req.Transport(), tp) {
				t.Errorf("inbound body %q over %s", c.req.Body(), c.req.Transport())
			}

			res, err := ep.SendMessage(context.Background(), gwsip.OutboundMessage{
				From: uri(t, "sip:romeo@xmpp.test"), To: uri(t, "sip:alice@litware.test"),
				ContentType: "text/plain", Body: []byte("out over " + tp),
			})
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("outbound: %v %v", res, err)
			}
			if r := <-got; string(r.Body()) != "out over "+tp || !strings.EqualFold(r.Transport(), tp) {
				t.Errorf("outbound body %q over %s", r.Body(), r.Transport())
			}
		})
	}
}
