package gateway_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xgw-gateway/xgw/gateway"
	"github.com/xgw-gateway/xgw/gateway/trace"
)

// TestTraceLoopback relays one message each way through the loopback
// gateway with the protocol trace on (default: bodies redacted) and reads
// the trace: the SIP MESSAGE in and the XMPP message out carry the same
// Call-ID (as the stanza's thread), the XMPP message in and the SIP MESSAGE
// out too, the resolver's SRV lookup is there, and no body is in clear.
func TestTraceLoopback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.jsonl")
	tr, err := trace.Open(trace.Options{File: path, Protocols: trace.SIP | trace.XMPP | trace.DNS})
	if err != nil {
		t.Fatal(err)
	}
	l := startLoop(t, gateway.WithTracer(tr))

	const toXMPP, toSIP = "wherefore art thou", "deny thy father"
	if got := l.sipMessage("bob@peer.test", "text/plain;charset=UTF-8", toXMPP); got != 200 {
		t.Fatalf("status %d, want 200", got)
	}
	recv(t, l.peerIn, "stanza at the peer")
	l.xmppMessage("bob@peer.test", "alice@litware.test", "<body>"+toSIP+"</body><thread>reply-1@peer.test</thread>")
	recv(t, l.edgeIn, "MESSAGE at the Edge")
	l.shutdown()
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{toXMPP, toSIP} {
		if strings.Contains(string(raw), body) {
			t.Errorf("the trace holds %q in clear", body)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []trace.Record
	if err := trace.Read(f, trace.Filter{}, func(r trace.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	find := func(proto string, dir trace.Dir, prefix string) *trace.Record {
		for i, r := range recs {
			if r.Proto == proto && r.Dir == dir && strings.HasPrefix(r.Msg, prefix) {
				return &recs[i]
			}
		}
		t.Errorf("no %s %s record starting %q", proto, dir, prefix)
		return nil
	}
	redacted := func(s string) string { return "[" + strconv.Itoa(len(s)) + " bytes redacted]" }

	sipIn := find("sip", trace.In, "MESSAGE sip:bob@peer.test SIP/2.0")
	xmppOut := find("xmpp", trace.Out, "<message")
	if sipIn != nil && xmppOut != nil {
		if sipIn.CallID == "" || xmppOut.Thread != sipIn.CallID {
			t.Errorf("SIP in Call-ID %q, XMPP out thread %q: want the same", sipIn.CallID, xmppOut.Thread)
		}
		if !strings.HasSuffix(sipIn.Msg, "\r\n\r\n"+redacted(toXMPP)) || !strings.Contains(xmppOut.Msg, "<body>"+redacted(toXMPP)+"</body>") {
			t.Errorf("bodies not redacted:\n%s\n%s", sipIn.Msg, xmppOut.Msg)
		}
		if sipIn.Local != "litware.test" || sipIn.Remote != "peer.test" || xmppOut.Local != "litware.test" || xmppOut.Remote != "peer.test" || xmppOut.Stream == "" {
			t.Errorf("labels: sip %s<-%s, xmpp %s->%s stream %q", sipIn.Local, sipIn.Remote, xmppOut.Local, xmppOut.Remote, xmppOut.Stream)
		}
	}
	sipRes := find("sip", trace.Out, "SIP/2.0 200 OK")
	if sipRes != nil && sipIn != nil && sipRes.CallID != sipIn.CallID {
		t.Errorf("200 OK for Call-ID %q, want %q", sipRes.CallID, sipIn.CallID)
	}

	xmppIn := find("xmpp", trace.In, "<message")
	sipOut := find("sip", trace.Out, "MESSAGE sip:alice@litware.test SIP/2.0")
	if xmppIn != nil && sipOut != nil {
		if xmppIn.Thread != "reply-1@peer.test" || sipOut.CallID != "reply-1@peer.test" {
			t.Errorf("XMPP in thread %q, SIP out Call-ID %q: want reply-1@peer.test", xmppIn.Thread, sipOut.CallID)
		}
		if !strings.HasSuffix(sipOut.Msg, redacted(toSIP)) {
			t.Errorf("SIP out body not redacted: %q", sipOut.Msg)
		}
	}
	find("sip", trace.In, "SIP/2.0 200 OK")
	if dns := find("dns", trace.Out, ";; opcode: QUERY"); dns != nil && !strings.Contains(dns.Msg, "_xmpp") {
		t.Errorf("first DNS query: %q", dns.Msg)
	}
	for _, r := range recs {
		if r.Proto == "xmpp" && strings.Contains(r.Msg, "<db:result") && !strings.Contains(r.Msg, "type=") && !strings.Contains(r.Msg, "bytes redacted]") {
			t.Errorf("dialback key in clear: %q", r.Msg)
		}
	}
}
