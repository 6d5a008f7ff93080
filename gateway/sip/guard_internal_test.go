package sip

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

// wire builds a request with CRLF line ends; "\n" in the text become CRLF.
func wire(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

const okHeaders = `Via: SIP/2.0/TCP 127.0.0.1:5061;branch=z9hG4bK1
From: <sip:alice@litware.test>;tag=a1
To: <sip:romeo@xmpp.test>
Call-ID: c1@edge
CSeq: 1 MESSAGE
Max-Forwards: 70
`

func TestFrame(t *testing.T) {
	lim := limits{maxMsg: 1024, maxBody: 100}
	tests := []struct {
		name      string
		in        string
		stream    bool
		pass      bool   // handed to sipgo unchanged (except an added Content-Length)
		reply     string // start of the reply, "" for none
		fatal     error  // errors.Is target, nil for none
		anyFatal  bool
		replyHas  []string
		addedCLen bool
	}{
		{name: "valid MESSAGE", stream: true, pass: true,
			in: wire("MESSAGE sip:romeo@xmpp.test SIP/2.0\n" + okHeaders + "Content-Type: text/plain\nContent-Length: 5\n\nhello")},
		{name: "compact headers", stream: true, pass: true,
			in: wire("MESSAGE sip:romeo@xmpp.test SIP/2.0\nv: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK2\nf: <sip:a@b>;tag=1\nt: <sip:c@d>\ni: x\nCSeq: 2 MESSAGE\nl: 0\n\n")},
		{name: "stream without Content-Length", stream: true, pass: true, addedCLen: true,
			in: wire("OPTIONS sip:xmpp.test SIP/2.0\n" + strings.Replace(okHeaders, "MESSAGE", "OPTIONS", 1) + "\n")},
		{name: "datagram without Content-Length", stream: false, pass: true,
			in: wire("MESSAGE sip:romeo@xmpp.test SIP/2.0\n"+okHeaders+"\n") + "body to the end"},
		{name: "missing Call-ID", stream: true, reply: "SIP/2.0 400 Missing call-id\r\n",
			in:       wire("MESSAGE sip:romeo@xmpp.test SIP/2.0\n" + strings.Replace(okHeaders, "Call-ID: c1@edge\n", "", 1) + "Content-Length: 0\n\n"),
			replyHas: []string{"Via: SIP/2.0/TCP 127.0.0.1:5061;branch=z9hG4bK1\r\n", "From: <sip:alice@litware.test>;tag=a1\r\n", "CSeq: 1 MESSAGE\r\n"}},
		{name: "CSeq method differs", stream: true, reply: "SIP/2.0 400 Bad CSeq",
			in: wire("SUBSCRIBE sip:romeo@xmpp.test SIP/2.0\n" + okHeaders + "Content-Length: 0\n\n")},
		{name: "header line without colon", stream: true, reply: "SIP/2.0 400 Malformed Header Line",
			in: wire("MESSAGE sip:romeo@xmpp.test SIP/2.0\n" + okHeaders + "garbage line\nContent-Length: 0\n\n")},
		{name: "Content-Length not a number", stream: true, reply: "SIP/2.0 400 Bad Content-Length", anyFatal: true,
			in: wire("MESSAGE sip:romeo@xmpp.test SIP/2.0\n" + okHeaders + "Content-Length: ten\n\n")},
		{name: "body over the limit", stream: true, reply: "SIP/2.0 413 Request Entity Too Large", anyFatal: true,
			in: wire("MESSAGE sip:romeo@xmpp.test SIP/2.0\n" + okHeaders + "Content-Length: 101\n\n")},
		{name: "headers over the limit", stream: true, reply: "SIP/2.0 513 Message Too Large", fatal: errLineTooLong,
			in: wire("MESSAGE sip:romeo@xmpp.test SIP/2.0\n" + okHeaders + "X-Pad: " + strings.Repeat("a", 1100) + "\n\n")},
		{name: "content beyond the datagram", stream: false, reply: "SIP/2.0 400 Content-Length Beyond Datagram",
			in: wire("MESSAGE sip:romeo@xmpp.test SIP/2.0\n" + okHeaders + "Content-Length: 50\n\nshort")},
		{name: "HTTP", stream: true, fatal: errNotSIP, in: "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "TLS record on a TCP port", stream: true, fatal: errNotSIP, in: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n"},
		{name: "other SIP version", stream: true, fatal: errNotSIP, in: wire("MESSAGE sip:a@b SIP/3.0\n" + okHeaders + "\n")},
		{name: "broken response is dropped, not answered", stream: true,
			in: wire("SIP/2.0 200 OK\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK1\nContent-Length: 0\n\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := frame(bufio.NewReaderSize(strings.NewReader(tt.in), 64), lim, tt.stream, nil)
			if tt.pass {
				want := tt.in
				if tt.addedCLen {
					want = strings.TrimSuffix(tt.in, "\r\n") + "Content-Length: 0\r\n\r\n"
				}
				if string(f.msg) != want || f.reply != nil || f.fatal != nil {
					t.Fatalf("msg %q reply %q fatal %v, want the message passed through as %q", f.msg, f.reply, f.fatal, want)
				}
				return
			}
			if f.msg != nil {
				t.Errorf("passed %q to sipgo", f.msg)
			}
			if !strings.HasPrefix(string(f.reply), tt.reply) || (tt.reply == "") != (f.reply == nil) {
				t.Errorf("reply %q, want it to start with %q", f.reply, tt.reply)
			}
			for _, h := range tt.replyHas {
				if !strings.Contains(string(f.reply), h) {
					t.Errorf("reply lacks %q:\n%s", h, f.reply)
				}
			}
			switch {
			case tt.fatal != nil && !errors.Is(f.fatal, tt.fatal):
				t.Errorf("fatal %v, want %v", f.fatal, tt.fatal)
			case tt.fatal == nil && tt.anyFatal != (f.fatal != nil):
				t.Errorf("fatal %v, want fatal=%v", f.fatal, tt.anyFatal)
			}
			if f.why == "" && f.fatal == nil {
				t.Error("refused without a reason for the log")
			}
		})
	}
}

// The parser never panics and never passes on more than the limits allow.
func FuzzFrame(f *testing.F) {
	f.Add(wire("MESSAGE sip:romeo@xmpp.test SIP/2.0\n"+okHeaders+"Content-Length: 5\n\nhello"), true)
	f.Add("SIP/2.0 200 OK\r\nl: 3\r\n\r\nabc", false)
	lim := limits{maxMsg: 2048, maxBody: 512}
	f.Fuzz(func(t *testing.T, in string, stream bool) {
		fr := frame(bufio.NewReaderSize(strings.NewReader(in), 64), lim, stream, nil)
		if len(fr.msg) > lim.maxMsg+len("Content-Length: 0\r\n") {
			t.Fatalf("passed %d bytes, over the limit", len(fr.msg))
		}
	})
}

func BenchmarkFrame(b *testing.B) {
	in := wire("MESSAGE sip:romeo@xmpp.test SIP/2.0\n" + okHeaders + "Content-Type: text/plain\nContent-Length: 5\n\nhello")
	lim := limits{maxMsg: 65535, maxBody: 32768}
	r := strings.NewReader(in)
	br := bufio.NewReaderSize(r, 4096)
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(in)
		br.Reset(r)
		f := frame(br, lim, true, buf)
		if f.msg == nil {
			b.Fatal(f.why)
		}
		buf = f.msg
	}
}
