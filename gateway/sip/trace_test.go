package sip_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	gwsip "github.com/xgw-gateway/xgw/gateway/sip"
	"github.com/xgw-gateway/xgw/gateway/trace"
)

// TestTrace runs a MESSAGE each way and a request the guard refuses, with
// the endpoint tracing, and reads the four messages of each exchange back
// from the trace: request and response, in order, with the Call-ID, the
// domains, the peer, and the body hidden.
func TestTrace(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tcp", nil, nil)
	ed.srv.OnMessage(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	ed.serve()
	path := filepath.Join(t.TempDir(), "trace.jsonl")
	tr, err := trace.Open(trace.Options{File: path, Protocols: trace.SIP})
	if err != nil {
		t.Fatal(err)
	}
	ep, _, stop := gateway(t, p, ed, newHandler(), func(c *gwsip.Config) { c.Tracer = tr })

	// Out: a MESSAGE to the Edge and its 200.
	if _, err := ep.SendMessage(context.Background(), gwsip.OutboundMessage{
		From: uri(t, "sip:romeo@xmpp.test"), To: uri(t, "sip:alice@litware.test"), CallID: "out-1@xgw",
		ContentType: "text/plain;charset=UTF-8", Body: []byte("wherefore art thou"),
	}); err != nil {
		t.Fatal(err)
	}
	// In: a MESSAGE from the Edge and our 200.
	req := ed.request(sip.MESSAGE, "sip:romeo@xmpp.test")
	cid := sip.CallIDHeader("in-1@edge")
	req.AppendHeader(&cid)
	ct := sip.ContentTypeHeader("text/plain;charset=UTF-8")
	req.AppendHeader(&ct)
	req.SetBody([]byte("but soft"))
	if res := ed.mustDo(req); res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	// A request without Call-ID, refused by the guard before sipgo sees it.
	conn, err := net.Dial("tcp", ep.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("MESSAGE sip:romeo@xmpp.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bK.x\r\nFrom: <sip:a@litware.test>;tag=1\r\nTo: <sip:romeo@xmpp.test>\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"))
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 512)
	conn.Read(buf)
	conn.Close()

	stop()
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var recs []trace.Record
	trace.Read(fh, trace.Filter{Proto: "sip"}, func(r trace.Record) error {
		if r.Proto == "sip" {
			recs = append(recs, r)
		}
		return nil
	})

	// Local is the Edge's side (litware.test here), remote the address
	// the gateway stands for (xmpp.test), as in the gateway proper.
	type want struct {
		dir           trace.Dir
		start, callID string
		local, remote string
		body          string // the redaction marker, or "" for none
	}
	wants := []want{
		{trace.Out, "MESSAGE sip:alice@litware.test SIP/2.0", "out-1@xgw", "litware.test", "xmpp.test", "[18 bytes redacted]"},
		{trace.In, "SIP/2.0 200 OK", "out-1@xgw", "litware.test", "xmpp.test", ""},
		{trace.In, "MESSAGE sip:romeo@xmpp.test SIP/2.0", "in-1@edge", "litware.test", "xmpp.test", "[8 bytes redacted]"},
		{trace.Out, "SIP/2.0 200 OK", "in-1@edge", "litware.test", "xmpp.test", ""},
		{trace.Out, "SIP/2.0 400 Missing call-id", "", "litware.test", "xmpp.test", ""},
	}
	if len(recs) != len(wants) {
		for _, r := range recs {
			t.Logf("%s %q", r.Dir, r.Msg)
		}
		t.Fatalf("%d SIP records, want %d", len(recs), len(wants))
	}
	// Records of different connections may be written in either order (a
	// response's record can follow a later request's), so match as a set.
	used := make([]bool, len(recs))
	for _, w := range wants {
		found := false
		for i, r := range recs {
			if used[i] || r.Dir != w.dir || !strings.HasPrefix(r.Msg, w.start) || r.CallID != w.callID {
				continue
			}
			used[i], found = true, true
			if r.Local != w.local || r.Remote != w.remote || r.Peer == "" {
				t.Errorf("record %d = %s peer=%q %s<->%s %.40q; want %s<->%s and a peer", i, r.Dir, r.Peer, r.Local, r.Remote, r.Msg, w.local, w.remote)
			}
			if w.body != "" && !strings.HasSuffix(r.Msg, "\r\n\r\n"+w.body) {
				t.Errorf("record %d body not redacted: %q", i, r.Msg)
			}
			break
		}
		if !found {
			t.Errorf("no record %s %q call-id=%q", w.dir, w.start, w.callID)
		}
	}
	for _, leak := range []string{"wherefore", "but soft"} {
		for _, r := range recs {
			if strings.Contains(r.Msg, leak) {
				t.Errorf("%q in clear: %q", leak, r.Msg)
			}
		}
	}
}
