package xmpp

import (
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
)

const hdrFmt = `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='%s' to='%s' version='1.0'>`

func hdr(from, to string) string {
	return strings.Replace(strings.Replace(hdrFmt, "%s", from, 1), "%s", to, 1)
}

// TestInboundStreamErrors feeds raw XML to a listening Server and checks
// the stream error it answers with (RFC 6120 §4.9.3) and that it closes.
func TestInboundStreamErrors(t *testing.T) {
	f := newFed(t)
	a := f.add(peerOpts{domains: []string{"a.test", "b2.a.test"}, partners: []config.Partner{{Domain: "gmail.test", Auth: "dialback"}},
		mod: func(c *Config) {
			c.MaxStanzaSize = 2048
			c.NegotiationTimeout = 300 * time.Millisecond
		}})
	bomb := `<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>` + hdr("gmail.test", "a.test")
	tests := []struct {
		name string
		in   []string // sent in order
		want []string // expected in order in the output
	}{
		{"to a domain we do not serve", []string{hdr("gmail.test", "other.test")},
			[]string{"<stream:stream", "<host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>", "does not serve other.test", "</stream:stream>"}},
		{"client namespace", []string{strings.Replace(hdr("gmail.test", "a.test"), "jabber:server", "jabber:client", 1)},
			[]string{"<invalid-namespace ", `jabber:client&#34;, expected jabber:server`}},
		{"wrong stream namespace", []string{strings.Replace(hdr("gmail.test", "a.test"), "http://etherx.jabber.org/streams", "urn:bogus", 1)},
			[]string{"<invalid-namespace "}},
		{"unsupported version", []string{strings.Replace(hdr("gmail.test", "a.test"), " version='1.0'>", " version='2.0'>", 1)},
			[]string{"<unsupported-version "}},
		{"xml bomb", []string{bomb}, []string{"<restricted-xml ", "DTD"}},
		{"comment", []string{hdr("gmail.test", "a.test"), "<!-- hi -->"}, []string{"<stream:features>", "<restricted-xml "}},
		{"processing instruction", []string{hdr("gmail.test", "a.test"), "<?php x?>"}, []string{"<restricted-xml "}},
		{"unknown entity", []string{hdr("gmail.test", "a.test"), "<message>&lol;</message>"}, []string{"<not-well-formed "}},
		{"not well-formed", []string{hdr("gmail.test", "a.test"), "<message><</message>"}, []string{"<not-well-formed "}},
		{"stanza before authentication", []string{hdr("gmail.test", "a.test"), "<message from='x@gmail.test' to='alice@a.test'><body>hi</body></message>"},
			[]string{"<not-authorized ", "before the stream was authenticated"}},
		{"stanza larger than the limit", []string{hdr("gmail.test", "a.test"), "<message from='x@gmail.test' to='alice@a.test'><body>" + strings.Repeat("A", 10000)},
			[]string{"<policy-violation ", "larger than the limit of 2048 bytes"}},
		{"unsolicited db:result type=valid", []string{hdr("gmail.test", "a.test"), "<db:result from='gmail.test' to='a.test' type='valid'/>"},
			[]string{"<unsupported-stanza-type ", "unsolicited"}},
		{"unsolicited db:verify type=valid", []string{hdr("gmail.test", "a.test"), "<db:verify from='gmail.test' to='a.test' id='x' type='valid'/>"},
			[]string{"<unsupported-stanza-type "}},
		{"db:result without to", []string{hdr("gmail.test", "a.test"), "<db:result from='gmail.test'>k</db:result>"},
			[]string{"<improper-addressing "}},
		{"unknown element", []string{hdr("gmail.test", "a.test"), "<foo xmlns='urn:x'/>"}, []string{"<unsupported-stanza-type "}},
		{"negotiation timeout", []string{hdr("gmail.test", "a.test")}, []string{"<stream:features>", "<connection-timeout "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := dialWire(t, a.addr)
			for _, s := range tt.in {
				w.send(s)
			}
			for _, s := range tt.want {
				w.expect(s)
			}
			w.expectClosed()
		})
	}
}

// TestInboundFeatures checks the header and features we answer with.
func TestInboundFeatures(t *testing.T) {
	f := newFed(t)
	a := f.add(peerOpts{domains: []string{"a.test", "b2.a.test"}})
	w := dialWire(t, a.addr)
	w.send(hdr("gmail.test", "b2.a.test"))
	got := w.expect("</stream:features>")
	for _, want := range []string{
		"xmlns:db='jabber:server:dialback'", "from='b2.a.test'", "to='gmail.test'", "version='1.0'",
		"<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("header/features lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "starttls") {
		t.Errorf("STARTTLS offered without a TLS config:\n%s", got)
	}
	if id := attrOf(got, "<stream:stream", "id"); len(id) < 16 {
		t.Errorf("stream id %q too short to be unguessable", id)
	}
	w.send("</stream:stream>")
	w.expect("</stream:stream>")
	w.expectClosed()
}

func TestStanzaRoundTrip(t *testing.T) {
	tests := []struct{ in, want string }{
		{`<message from='a@x' to='b@y' type='chat' id='1'><body>hi &amp; bye</body></message>`,
			`<message from='a@x' to='b@y' type='chat' id='1'><body>hi &amp; bye</body></message>`},
		{`<message to='b@y' xml:lang='de'><x xmlns='urn:x' a='1'><y/></x></message>`,
			`<message to='b@y' xml:lang='de'><x xmlns='urn:x' a='1'><y/></x></message>`},
		{`<iq xmlns='jabber:server' type='get' id='p' to='y'><ping xmlns='urn:xmpp:ping'/></iq>`,
			`<iq to='y' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`},
		{`<presence xmlns:p='urn:p' to='b@y'><p:c p:v='1'/></presence>`,
			`<presence to='b@y'><c xmlns='urn:p' xmlns:a1='urn:p' a1:v='1'/></presence>`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			st, err := ParseStanza([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := st.String(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			again, err := ParseStanza(st.Bytes())
			if err != nil || again.String() != tt.want {
				t.Errorf("not stable: %v %s", err, again)
			}
		})
	}
	var msg struct {
		Body string `xml:"body"`
	}
	st := mustStanza(t, `<message to='b@y'><body>hello</body></message>`)
	if err := st.Decode(&msg); err != nil || msg.Body != "hello" {
		t.Errorf("Decode: %v %+v", err, msg)
	}
	b := st.Bounce(&Error{Type: ErrorTypeCancel, Condition: CondServiceUnavailable, Text: "x"})
	want := `<message from='b@y' type='error'><body>hello</body><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>x</text></error></message>`
	if got := b.String(); got != want {
		t.Errorf("bounce\ngot  %s\nwant %s", got, want)
	}
}
