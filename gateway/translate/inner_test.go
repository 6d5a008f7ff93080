package translate

import (
	"bytes"
	"encoding/xml"
	"errors"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

var innerHead = stanza.Message{ID: "i1", From: jid.MustParse("juliet@xmpp.example/balcony"), To: jid.MustParse("alice@litware.example"), Type: stanza.ChatMessage, Lang: "en"}

func TestMessageFromInner(t *testing.T) {
	tests := []struct {
		name      string
		inner     string
		fast      bool // the scanner, not encoding/xml, handles it
		body      string
		thread    string
		state     ChatState
		wantError bool
	}{
		{name: "plain", inner: `<body>hi</body>`, fast: true, body: "hi"},
		{name: "our own output", inner: string((&Message{Body: "a & <b> \"q\" 'a'\r\n☂😀", Thread: "t", ChatState: ChatActive}).AppendInner(nil)), fast: true, body: "a & <b> \"q\" 'a'\r\n☂😀", thread: "t", state: ChatActive},
		{name: "receipt request and origin id", inner: `<body>x</body><request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='abc'/>`, fast: true, body: "x"},
		{name: "whitespace between", inner: "\n  <thread>t9</thread>\n  <body xml:lang='en'>hello</body>\n", fast: true, body: "hello", thread: "t9"},
		{name: "lang choice", inner: `<body xml:lang="de">hallo</body><body xml:lang="en">hello</body>`, fast: true, body: "hello"},
		{name: "char refs", inner: `<body>&#x1F600;&#65;&#xD;&#10;</body>`, fast: true, body: "😀A\r\n"},
		{name: "raw CR goes to encoding/xml", inner: "<body>a\r\nb</body>", body: "a\nb"},
		{name: "CDATA goes to encoding/xml", inner: `<body><![CDATA[<x>]]></body>`, body: "<x>"},
		{name: "prefixed goes to encoding/xml", inner: `<cs:composing xmlns:cs="http://jabber.org/protocol/chatstates"/>`, state: ChatComposing},
		{name: "extension with content goes to encoding/xml", inner: `<html xmlns="http://jabber.org/protocol/xhtml-im"><body xmlns="http://www.w3.org/1999/xhtml"><p>hi</p></body></html><body>hi</body>`, body: "hi"},
		{name: "forbidden char ref is an error", inner: `<body>&#1;</body>`, wantError: true},
		{name: "element in body is an error", inner: `<body>a<b/>c</body>`, wantError: true},
		{name: "unknown entity is an error", inner: `<body>&nbsp;</body>`, wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, fast := scanInner(innerHead, []byte(tt.inner))
			if fast != tt.fast {
				t.Errorf("scanner accepted = %v, want %v", fast, tt.fast)
			}
			msg, err := MessageFromInner(innerHead, []byte(tt.inner))
			if tt.wantError {
				if err == nil {
					t.Fatalf("no error, got %+v", msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg.Body != tt.body || msg.Thread != tt.thread || msg.ChatState != tt.state || msg.ID != "i1" || !msg.From.Equal(innerHead.From) {
				t.Errorf("got %+v", msg)
			}
		})
	}
}

// The size bound holds whatever the payload's shape: a plain body the
// scanner would read is refused like one that goes to encoding/xml.
func TestMessageFromInnerTooLarge(t *testing.T) {
	big := strings.Repeat("a", MaxStanza)
	tests := []struct{ name, inner string }{
		{"plain shape", "<body>" + big + "</body>"},
		{"encoding/xml shape", "<body><![CDATA[" + big + "]]></body>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := MessageFromInner(innerHead, []byte(tt.inner))
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("MessageFromInner of %d bytes: %v, want ErrTooLarge", len(tt.inner), err)
			}
		})
	}
	at := "<body>" + big[:MaxStanza-len("<body></body>")] + "</body>"
	if msg, err := MessageFromInner(innerHead, []byte(at)); err != nil || len(msg.Body) != MaxStanza-len("<body></body>") {
		t.Errorf("payload of exactly MaxStanza bytes: body of %d bytes, %v", len(msg.Body), err)
	}
}

// FuzzMessageFromInner: whenever the scanner accepts a payload, encoding/xml
// reads the same message from it.
func FuzzMessageFromInner(f *testing.F) {
	seeds := []string{
		`<body>hi</body>`,
		`<body xml:lang='de'>a &amp; b</body><thread>x</thread><active xmlns="http://jabber.org/protocol/chatstates"/>`,
		`<subject>s</subject><body>&#x1F600;&#xD;&#10;</body><request xmlns='urn:xmpp:receipts'/>`,
		string((&Message{Body: "日本語 \"q\" <tag> & 'a'\r\n", Thread: "t1", Subject: "Réunion", ChatState: ChatComposing}).AppendInner(nil)),
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, inner []byte) {
		fast, ok := scanInner(innerHead, inner)
		if !ok {
			return
		}
		ref, err := MessageFromStanza(innerHead, xml.NewDecoder(bytes.NewReader(inner)))
		if err != nil {
			t.Fatalf("scanner accepted %q, encoding/xml refused it: %v", inner, err)
		}
		if fast.Body != ref.Body || fast.Subject != ref.Subject || fast.Thread != ref.Thread || fast.ChatState != ref.ChatState {
			t.Fatalf("scanner and encoding/xml disagree on %q:\n scanner %+v\n xml     %+v", inner, fast, ref)
		}
	})
}
