package xmpp

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/gateway/trace"
)

// fuzzMax is the stanza limit under fuzzing: small, so that the limit is
// reachable by short inputs.
const fuzzMax = 4096

// fuzzSeeds are hostile and valid peer inputs shared by the stream fuzzers.
func fuzzSeeds() []string {
	h := hdr("gmail.test", "a.test")
	return []string{
		h,
		h + "  \n " + `</stream:stream>`,
		`<?xml version='1.0' encoding='ISO-8859-1'?>` + h,
		h + `<db:result from='gmail.test' to='a.test'>abc123</db:result>`,
		h + `<db:verify from='gmail.test' to='a.test' id='s1'>abc123</db:verify>`,
		h + `<db:result from='a.test' to='a.test'>k</db:result>`,
		h + `<db:result from='gmail.test' to='a.test' type='valid'/>`,
		`<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
			`<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>` + h + `<message>&lol3;</message>`,
		h + `<!DOCTYPE x [<!ENTITY a "b">]><message>&a;</message>`,
		h + `<message>` + strings.Repeat("<a>", 10000) + strings.Repeat("</a>", 10000) + `</message>`,
		h + `<message from='x@gmail.test' to='y@a.test' big='` + strings.Repeat("x", 2*fuzzMax) + `'/>`,
		h + `<message from='x@gmail.test' to='y@a.test'><body>` + "\xff\xfe\xc0\x80" + `</body></message>`,
		h + `<message from='eve@evil.test' to='bob@a.test'><body>forged</body></message>`,
		h + `<presence from='alice@a.test' to='bob@a.test'/>`,
		h + `<message from='a@gmail.test' to='b@a.test' xmlns:p='urn:x' p:q='&amp;&lt;'><x xmlns='urn:y'>t&amp;<![CDATA[<c>]]></x></message>`,
		h + `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`,
		h + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>`,
		h + `<stream:error><host-gone xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`,
		h + `<!-- c --><?pi x?>`,
		h + strings.Repeat(" ", 3*fuzzMax) + `<iq/>`,
	}
}

// FuzzStreamReader drives the stream reader (readHeader, next, readNode)
// directly, traced or not: no panic, every failure classified, no element
// above the limit, neither the reader nor the trace's raw copy more than
// the limit ahead of the last element, and every element re-serialised as
// well-formed XML.
func FuzzStreamReader(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s), false)
	}
	f.Add([]byte(fuzzSeeds()[3]), true)
	f.Add([]byte(fuzzSeeds()[len(fuzzSeeds())-1]), true)
	tr, err := trace.Open(trace.Options{Writer: io.Discard, Protocols: trace.XMPP})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { tr.Close() })
	f.Fuzz(func(t *testing.T, in []byte, traced bool) {
		client, server := net.Pipe()
		defer server.Close()
		go func() {
			client.Write(in)
			client.Close()
		}()
		server.SetReadDeadline(time.Now().Add(10 * time.Second))
		st := newStream(server, fuzzMax, time.Second)
		if traced {
			st.traceAs(tr, "pipe", "a.test", "gmail.test", false)
		}
		_, err := st.readHeader()
		for n := 0; err == nil; n++ {
			if n > len(in) {
				t.Fatalf("%d elements from %d bytes: reader does not advance", n, len(in))
			}
			from := st.dec.InputOffset()
			var el *node
			el, err = st.next()
			if ahead := st.lr.read - st.dec.InputOffset(); ahead > fuzzMax {
				t.Fatalf("reader %d bytes ahead of the decoder, limit %d", ahead, fuzzMax)
			}
			if kept := len(st.lr.raw); kept > fuzzMax {
				t.Fatalf("trace keeps %d raw bytes, limit %d", kept, fuzzMax)
			}
			if err != nil {
				break
			}
			if size := st.dec.InputOffset() - from; size > fuzzMax {
				t.Fatalf("accepted a %d-byte element, limit %d", size, fuzzMax)
			}
			wellFormed(t, "element", elementString(el))
			var b bytes.Buffer
			el.write(&b, NSServer)
			wellFormed(t, "element", b.String())
			if s, err := stanzaFromElement(el); err == nil {
				wellFormed(t, "stanza content", "<x>"+string(s.Inner)+"</x>")
			}
		}
		var se *StreamError
		switch {
		case errors.As(err, &se):
			if se.Condition == SECConnectionTimeout {
				t.Fatalf("reader waited for the deadline on a closed pipe: %v", se)
			}
		case errors.Is(err, errStreamEnd), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		default:
			t.Fatalf("unclassified read error %T: %v", err, err)
		}
	})
}

// wellFormed fails unless s is one complete, strictly well-formed element
// (elementString may cut it: then only the prefix must be well-formed).
func wellFormed(t *testing.T, what, s string) {
	t.Helper()
	cut := strings.HasSuffix(s, "...") && len(s) == 203
	if cut {
		s = strings.TrimSuffix(s, "...")
	}
	d := xml.NewDecoder(strings.NewReader(s))
	d.Strict = true
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			var syn *xml.SyntaxError
			if cut && errors.As(err, &syn) && strings.Contains(syn.Msg, "unexpected EOF") {
				return
			}
			t.Fatalf("%s not well-formed: %v\n%q", what, err, s)
		}
	}
}

// FuzzInboundStream feeds arbitrary bytes as the peer's side of an inbound
// stream over loopback TCP to a Server: no panic, the server answers and
// closes within its negotiation timeout, what it sends is well-formed XML,
// and it leaves no goroutine behind (Shutdown returns).
func FuzzInboundStream(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	const negotiation = 2 * time.Second
	f.Fuzz(func(t *testing.T, in []byte) {
		var mu sync.Mutex
		var got []*Stanza
		s, err := New(Config{
			Domains: []string{"a.test"}, Open: true, // admits gmail.test to dialback; no Resolver: verification fails fast
			MaxStanzaSize: fuzzMax, NegotiationTimeout: negotiation, IdleTimeout: negotiation,
			Handler: HandlerFunc(func(_ context.Context, st *Stanza) error {
				mu.Lock()
				got = append(got, st)
				mu.Unlock()
				return nil
			}),
		})
		if err != nil {
			t.Fatal(err)
		}
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		conn, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		if !s.add() {
			t.Fatal("new server refused a stream")
		}
		go func() {
			defer s.wg.Done()
			defer close(done)
			s.serveInbound(conn)
		}()
		out := make(chan []byte, 1)
		go func() {
			b, err := io.ReadAll(io.LimitReader(client, 1<<20))
			if err != nil {
				b = nil // reset: the tail may be lost, nothing to check
			}
			out <- b
		}()
		client.SetDeadline(time.Now().Add(negotiation + 3*time.Second))
		client.Write(in)
		client.(*net.TCPConn).CloseWrite()
		select {
		case <-done:
		case <-time.After(negotiation + 3*time.Second):
			t.Fatalf("server still reading %v after the peer closed its side", negotiation+3*time.Second)
		}
		if b := <-out; b != nil {
			wellFormedStream(t, b)
		}
		ctx, cancel := context.WithTimeout(context.Background(), negotiation+time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v (goroutines left behind)", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) > 0 {
			t.Fatalf("handler got %d stanzas from a stream that never authenticated: first %+v", len(got), got[0])
		}
	})
}

// wellFormedStream fails unless out is a complete, well-formed XML
// document (our header, elements, </stream:stream>) or empty.
func wellFormedStream(t *testing.T, out []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(out))
	d.Strict = true
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("server output not well-formed: %v\n%q", err, out)
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				if roots++; roots > 1 {
					t.Fatalf("server output has content after </stream:stream>:\n%q", out)
				}
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
}

// FuzzAuthenticatedStream feeds arbitrary bytes on an inbound stream after
// gmail.test authenticated it with real dialback (a Server is its
// authoritative server, found through a DNS server on loopback): the
// Handler only ever gets stanzas from gmail.test to a.test, whatever
// 'from' the bytes claim, and the stream ends cleanly.
func FuzzAuthenticatedStream(f *testing.F) {
	h := func(from, to string) string {
		return `<message from='` + from + `' to='` + to + `' type='chat'><body>hi</body></message>`
	}
	for _, s := range []string{
		h("eve@gmail.test/r", "bob@a.test"),
		h("eve@GMAIL.test", "BOB@a.test"),
		h("eve@evil.test", "bob@a.test"),
		h("alice@a.test", "bob@a.test"),
		h("eve@gmail.test", "bob@elsewhere.test"),
		`<message to='bob@a.test'/>`,
		`<presence from='eve@gmail.test' to='bob@a.test'><status>` + strings.Repeat("s", 2*fuzzMax) + `</status></presence>`,
		`<iq from='eve@gmail.test' to='a.test' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>` + h("eve@gmail.test", "bob@a.test"),
		`<db:result from='evil.test' to='a.test'>k</db:result>` + h("eve@evil.test", "bob@a.test"),
		h("eve@gmail.test", "bob@a.test") + `<!-- c -->`,
		`<message from='eve@gmail.test' to='bob@a.test'>` + strings.Repeat("<a>", 100) + `</message>`,
		`</stream:stream>`,
	} {
		f.Add([]byte(s))
	}
	fd := newFed(f)
	auth := fd.add(peerOpts{domains: []string{"gmail.test"}, open: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	const negotiation = 2 * time.Second
	f.Fuzz(func(t *testing.T, in []byte) {
		var mu sync.Mutex
		var got []*Stanza
		s, err := New(Config{
			Domains: []string{"a.test"}, Federation: []config.Partner{{Domain: "gmail.test", Auth: "dialback"}},
			Resolver: fd.resolver(), ConnectTimeout: time.Second,
			MaxStanzaSize: fuzzMax, NegotiationTimeout: negotiation, IdleTimeout: negotiation,
			Handler: HandlerFunc(func(_ context.Context, st *Stanza) error {
				mu.Lock()
				got = append(got, st)
				mu.Unlock()
				return nil
			}),
		})
		if err != nil {
			t.Fatal(err)
		}
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		if !s.add() {
			t.Fatal("new server refused a stream")
		}
		go func() {
			defer s.wg.Done()
			defer close(done)
			s.serveInbound(conn)
		}()
		w := wrapWire(t, client)
		w.send(hdr("gmail.test", "a.test"))
		id := attrOf(w.expect("version='1.0'>"), "stream:stream", "id")
		w.send(string(dbRequest("result", "gmail.test", "a.test", "", auth.srv.keys.key("a.test", "gmail.test", id))))
		w.expect("type='valid'/>")
		client.SetWriteDeadline(time.Now().Add(negotiation + 3*time.Second))
		client.Write(in) // the server may close before reading it all
		client.(*net.TCPConn).CloseWrite()
		select {
		case <-done:
		case <-time.After(negotiation + 3*time.Second):
			t.Fatalf("server still reading %v after the peer closed its side", negotiation+3*time.Second)
		}
		w.expectClosed()
		wellFormedStream(t, []byte(w.all()))
		ctx, cancel := context.WithTimeout(context.Background(), negotiation+time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v (goroutines left behind)", err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, st := range got {
			if !strings.EqualFold(st.From.Domainpart(), "gmail.test") || !strings.EqualFold(st.To.Domainpart(), "a.test") {
				t.Fatalf("handler got a stanza from %s to %s on a stream authenticated only for gmail.test->a.test", st.From, st.To)
			}
		}
	})
}
