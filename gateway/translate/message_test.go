package translate

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/text/encoding/japanese"
	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/translate")

const goldenDir = "../../testdata/translate"

// unicodeSet is the text the seed's readers saw turn into "????".
var unicodeSet = []struct{ name, text string }{
	{"CJK", "日本語の中文 한국어 漢字"},
	{"Cyrillic", "Привет, мир! Ёжик"},
	{"Arabic RTL", "مرحبا بالعالم ١٢٣"},
	{"Hebrew RTL with LTR", "שלום world עולם"},
	{"combining marks", "e\u0301 n\u0303 a\u0308 Z\u0351\u0325"},
	{"astral emoji", "😀🎉🏳️‍🌈 👩‍👩‍👧"},
	{"astral CJK and music", "𠜎𠜱 𝄞"},
	{"CRLF and tab", "line one\r\nline two\n\tindented"},
	{"XML specials", `<b>&amp;</b> "quoted" 'single'`},
	{"BOM and U+FFFD kept", "\uFEFFstart \uFFFD end"},
}

func readSIP(t *testing.T, raw []byte) *sip.Request {
	t.Helper()
	m, err := sip.ParseMessage(raw)
	if err != nil {
		t.Fatalf("sip.ParseMessage: %v", err)
	}
	req, ok := m.(*sip.Request)
	if !ok {
		t.Fatalf("parsed %T, want *sip.Request", m)
	}
	return req
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./gateway/translate/ -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (-update rewrites it)\n got: %q\nwant: %q", path, got, want)
	}
}

// TestGoldenSIPToXMPP: testdata/translate/sip-*.sip (wire text) -> .xml.
func TestGoldenSIPToXMPP(t *testing.T) {
	m := testMapper(t)
	files, _ := filepath.Glob(filepath.Join(goldenDir, "sip-*.sip"))
	if len(files) == 0 {
		t.Fatal("no sip-*.sip fixtures")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".sip")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := m.MessageFromSIP(readSIP(t, raw))
			if err != nil {
				t.Fatalf("MessageFromSIP: %v", err)
			}
			out := append(msg.AppendXML(nil), '\n')
			golden(t, strings.TrimSuffix(f, ".sip")+".xml", out)

			// The XML must parse back to the same message.
			back, err := DecodeMessage(out)
			if err != nil {
				t.Fatalf("DecodeMessage: %v", err)
			}
			if back.Body != msg.Body || back.Thread != msg.Thread || back.ChatState != msg.ChatState || !back.From.Equal(msg.From) || !back.To.Equal(msg.To) {
				t.Errorf("XML round trip changed the message:\n got %+v\nwant %+v", back, msg)
			}
		})
	}
}

// TestGoldenXMPPToSIP: testdata/translate/xmpp-*.xml -> .sip (wire text).
func TestGoldenXMPPToSIP(t *testing.T) {
	m := testMapper(t)
	files, _ := filepath.Glob(filepath.Join(goldenDir, "xmpp-*.xml"))
	if len(files) == 0 {
		t.Fatal("no xmpp-*.xml fixtures")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".xml")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := DecodeMessage(raw)
			if err != nil {
				t.Fatalf("DecodeMessage: %v", err)
			}
			sm, err := m.MessageToSIP(&msg)
			if err != nil {
				t.Fatalf("MessageToSIP: %v", err)
			}
			wire := sm.Request("xgwtag").String()
			golden(t, strings.TrimSuffix(f, ".xml")+".sip", []byte(wire))

			// The wire text must parse with sipgo and carry the body unchanged.
			req := readSIP(t, []byte(wire))
			if msg.Body != "" && string(req.Body()) != msg.Body {
				t.Errorf("body after SIP parse = %q, want %q", req.Body(), msg.Body)
			}
		})
	}
}

// TestUnicodeBothWays sends every string of unicodeSet SIP -> XMPP -> SIP and
// XMPP -> SIP -> XMPP through wire text and checks it arrives byte-identical.
func TestUnicodeBothWays(t *testing.T) {
	m := testMapper(t)
	alice := jid.MustParse("alice@litware.example")
	juliet := jid.MustParse("juliet@xmpp.example/phone")
	for _, tt := range unicodeSet {
		t.Run("SIP first/"+tt.name, func(t *testing.T) {
			req := newSIPMessage("sip:juliet@xmpp.example", "sip:alice@litware.example", "text/plain;charset=UTF-8", []byte(tt.text))
			msg, err := m.MessageFromSIP(readSIP(t, []byte(req.String())))
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := DecodeMessage(msg.AppendXML(nil))
			if err != nil {
				t.Fatal(err)
			}
			if parsed.Body != tt.text {
				t.Fatalf("XMPP body = %q, want %q", parsed.Body, tt.text)
			}
			reply := Message{From: parsed.To, To: parsed.From, Type: stanza.ChatMessage, Body: parsed.Body, Thread: parsed.Thread}
			sm, err := m.MessageToSIP(&reply)
			if err != nil {
				t.Fatal(err)
			}
			back := readSIP(t, []byte(sm.Request("t1").String()))
			if !bytes.Equal(back.Body(), []byte(tt.text)) {
				t.Fatalf("SIP body back = %q, want %q", back.Body(), tt.text)
			}
			if got := back.CallID().Value(); got != req.CallID().Value() {
				t.Errorf("Call-ID back = %q, want the original %q (thread correlation)", got, req.CallID().Value())
			}
		})
		t.Run("XMPP first/"+tt.name, func(t *testing.T) {
			msg := Message{From: juliet, To: alice, Type: stanza.ChatMessage, ID: "x1", Body: tt.text}
			// Through the token path mellium would use, then raw bytes.
			var buf bytes.Buffer
			if err := encodeTokens(&buf, msg.TokenReader()); err != nil {
				t.Fatal(err)
			}
			parsed, err := DecodeMessage(buf.Bytes())
			if err != nil {
				t.Fatalf("DecodeMessage(%s): %v", buf.Bytes(), err)
			}
			sm, err := m.MessageToSIP(&parsed)
			if err != nil {
				t.Fatal(err)
			}
			req := readSIP(t, []byte(sm.Request("t2").String()))
			if !bytes.Equal(req.Body(), []byte(tt.text)) {
				t.Fatalf("SIP body = %q, want %q", req.Body(), tt.text)
			}
			// The SIP user answers; the reply reaches XMPP unchanged.
			answer := newSIPMessage("sip:juliet@xmpp.example;gr=phone", "sip:alice@litware.example", string(req.ContentType().Value()), req.Body())
			got, err := m.MessageFromSIP(readSIP(t, []byte(answer.String())))
			if err != nil {
				t.Fatal(err)
			}
			if got.Body != tt.text || got.To.String() != juliet.String() {
				t.Fatalf("reply = %q to %s, want %q to %s", got.Body, got.To, tt.text, juliet)
			}
		})
	}
}

func encodeTokens(buf *bytes.Buffer, r xml.TokenReader) error {
	e := xml.NewEncoder(buf)
	if _, err := xmlstream.Copy(e, r); err != nil {
		return err
	}
	return e.Flush()
}

// newSIPMessage builds a MESSAGE as the Edge would send it.
func newSIPMessage(ruri, from, contentType string, body []byte) *sip.Request {
	var u, f sip.Uri
	if err := sip.ParseUri(ruri, &u); err != nil {
		panic(err)
	}
	if err := sip.ParseUri(from, &f); err != nil {
		panic(err)
	}
	req := sip.NewRequest(sip.MESSAGE, u)
	req.AppendHeader(sip.NewHeader("Via", "SIP/2.0/TLS edge.litware.example:5061;branch=z9hG4bK1"))
	req.AppendHeader(&sip.FromHeader{Address: f, Params: sip.HeaderParams{{K: "tag", V: "abc"}}})
	to := u
	to.UriParams = nil
	req.AppendHeader(&sip.ToHeader{Address: to})
	cid := sip.CallIDHeader("3848276298220188511@edge.litware.example")
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 7, MethodName: sip.MESSAGE})
	ct := sip.ContentTypeHeader(contentType)
	req.AppendHeader(&ct)
	req.SetBody(body)
	return req
}

func TestMessageFromSIPErrors(t *testing.T) {
	m := testMapper(t)
	sjisBad := []byte{0x82, 0xA0, 0x82} // truncated Shift_JIS sequence
	tests := []struct {
		name    string
		ctype   string
		body    []byte
		ruri    string
		subject string
		err     error
		want    string
	}{
		{name: "latin1 bytes, no charset", ctype: "text/plain", body: []byte("caf\xe9"), err: ErrBadBody, want: "byte 0xE9 at offset 3 is not UTF-8 and Content-Type declares no charset"},
		{name: "latin1 bytes declared UTF-8", ctype: "text/plain; charset=utf-8", body: []byte("caf\xe9 ok"), err: ErrBadBody, want: "invalid although charset=utf-8"},
		{name: "8-bit in us-ascii", ctype: "text/plain;charset=US-ASCII", body: []byte("na\xefve"), err: ErrBadBody, want: "us-ascii"},
		{name: "control character", ctype: "text/plain;charset=UTF-8", body: []byte("bell\x07"), err: ErrBadBody, want: "U+0007 at byte 4"},
		{name: "NUL", ctype: "text/plain", body: []byte("a\x00b"), err: ErrBadBody, want: "U+0000"},
		{name: "U+FFFF", ctype: "text/plain", body: []byte("x\uffff"), err: ErrBadBody, want: "U+FFFF"},
		{name: "control from a legacy charset", ctype: "text/plain;charset=windows-1252", body: []byte("esc\x1b"), err: ErrBadBody, want: "U+001B"},
		{name: "unknown charset", ctype: "text/plain;charset=x-klingon", body: []byte("Qapla'"), err: ErrUnsupportedMedia, want: `charset "x-klingon"`},
		{name: "replacement charset", ctype: "text/plain;charset=ISO-2022-KR", body: []byte("abc"), err: ErrUnsupportedMedia, want: "ISO-2022-KR"},
		{name: "bytes undefined in Shift_JIS", ctype: "text/plain;charset=Shift_JIS", body: sjisBad, err: ErrBadBody, want: "not defined in charset Shift_JIS"},
		{name: "html", ctype: "text/html", body: []byte("<b>hi</b>"), err: ErrUnsupportedMedia, want: "Content-Type text/html"},
		{name: "empty body", ctype: "text/plain", body: nil, err: ErrBadBody, want: "empty"},
		{name: "too large", ctype: "text/plain", body: bytes.Repeat([]byte("a"), MaxBody+1), err: ErrTooLarge, want: "bytes"},
		{name: "cpim nested", ctype: "message/cpim", body: []byte("Subject: x\r\n\r\nContent-Type: message/cpim\r\n\r\nSubject: y\r\n\r\nContent-Type: text/plain\r\n\r\nhi"), err: ErrUnsupportedMedia, want: "nested"},
		{name: "cpim truncated", ctype: "message/cpim", body: []byte("From: <im:a@b>\r\nTo: <im:c@d>"), err: ErrBadBody, want: "blank lines"},
		{name: "cpim with latin1 inner", ctype: "message/cpim", body: []byte("From: <im:a@b>\r\n\r\nContent-Type: text/plain\r\n\r\ncaf\xe9"), err: ErrBadBody, want: "declares no charset"},
		{name: "iscomposing with DOCTYPE", ctype: ContentTypeIsComposing, body: []byte(`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>&a;</state></isComposing>`), err: ErrBadBody, want: "DOCTYPE"},
		{name: "iscomposing bad state", ctype: ContentTypeIsComposing, body: []byte(`<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>typing</state></isComposing>`), err: ErrBadBody, want: `"typing"`},
		{name: "subject not UTF-8", ctype: "text/plain", body: []byte("hi"), subject: "caf\xe9", err: ErrBadBody, want: "Subject header"},
		{name: "multipart without text/plain", ctype: "multipart/alternative; boundary=b", body: []byte("--b\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b--\r\n"), err: ErrUnsupportedMedia, want: "no text/plain"},
		{name: "multipart without boundary", ctype: "multipart/alternative", body: []byte("x"), err: ErrBadBody, want: "boundary"},
		{name: "multipart with latin1 text part", ctype: "multipart/alternative; boundary=b", body: []byte("--b\r\nContent-Type: text/plain\r\n\r\ncaf\xe9\r\n--b--\r\n"), err: ErrBadBody, want: "declares no charset"},
		{name: "multipart broken base64", ctype: "multipart/alternative; boundary=b", body: []byte("--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n--b--\r\n"), err: ErrBadBody, want: "base64"},
		{name: "unknown target domain", ctype: "text/plain", body: []byte("hi"), ruri: "sip:eve@evil.example", err: ErrUnknownDomain, want: "evil.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ruri := tt.ruri
			if ruri == "" {
				ruri = "sip:juliet@xmpp.example"
			}
			req := newSIPMessage(ruri, "sip:alice@litware.example", tt.ctype, tt.body)
			if tt.subject != "" {
				req.AppendHeader(sip.NewHeader("Subject", tt.subject))
			}
			_, err := m.MessageFromSIP(req)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "fix:") {
				t.Errorf("err = %q; want it to mention %q and a fix", err, tt.want)
			}
			if strings.Contains(err.Error(), "????") {
				t.Errorf("error text contains ????")
			}
		})
	}

	t.Run("not a MESSAGE", func(t *testing.T) {
		req := newSIPMessage("sip:juliet@xmpp.example", "sip:alice@litware.example", "text/plain", []byte("x"))
		req.Method = sip.INFO
		if _, err := m.MessageFromSIP(req); !errors.Is(err, ErrUnsupportedType) {
			t.Fatalf("err = %v, want ErrUnsupportedType", err)
		}
	})
}

func TestDecodeTextCharsets(t *testing.T) {
	sjis, err := japanese.ShiftJIS.NewEncoder().String("全角カナ・ｶﾀｶﾅ")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, charset string
		in            []byte
		want          string
	}{
		{"ISO-8859-1 label", "ISO-8859-1", []byte("Gr\xfc\xdfe"), "Grüße"},
		{"latin1 alias", "latin1", []byte("\xe9t\xe9"), "été"},
		{"windows-1252 euro", "windows-1252", []byte("\x80 \x93q\x94"), "€ “q”"},
		{"ISO-8859-5", "ISO-8859-5", []byte("\xbf\xe0\xd8\xd2\xd5\xe2"), "Привет"},
		{"KOI8-R", "koi8-r", []byte("\xf0\xd2\xc9\xd7\xc5\xd4"), "Привет"},
		{"windows-1256 Arabic", "windows-1256", []byte("\xe3\xd1\xcd\xc8\xc7"), "مرحبا"},
		{"Shift_JIS", "Shift_JIS", []byte(sjis), "全角カナ・ｶﾀｶﾅ"},
		{"EUC-KR", "EUC-KR", []byte("\xc7\xd1\xb1\xb9\xbe\xee"), "한국어"},
		{"Big5", "Big5", []byte("\xa4\xa4\xa4\xe5"), "中文"},
		{"GB18030 astral", "GB18030", []byte("\x90\x30\x81\x30"), "\U00010000"},
		{"GB18030 U+FFFD is real", "GB18030", []byte("\x84\x31\xa4\x37"), "\uFFFD"},
		{"UTF-16 with BOM", "UTF-16", []byte("\xff\xfeh\x00i\x00"), "hi"},
		{"quoted utf-8 alias", "UTF8", []byte("ok ✓"), "ok ✓"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeText(tt.in, tt.charset)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("DecodeText(%q, %s) = %q, want %q", tt.in, tt.charset, got, tt.want)
			}
		})
	}
}

func TestMessageToSIP(t *testing.T) {
	m := testMapper(t)
	alice := jid.MustParse("alice@litware.example")
	juliet := jid.MustParse("juliet@xmpp.example/balcony")
	tests := []struct {
		name string
		msg  Message
		err  error
		ct   string
		cid  string
	}{
		{name: "chat", msg: Message{From: juliet, To: alice, Type: stanza.ChatMessage, Body: "hi", Thread: "abc@def"}, ct: ContentTypeText, cid: "abc@def"},
		{name: "normal type", msg: Message{From: juliet, To: alice, Type: stanza.NormalMessage, Body: "hi"}, ct: ContentTypeText},
		{name: "thread not a call-id", msg: Message{From: juliet, To: alice, Body: "hi", Thread: "a b"}, ct: ContentTypeText},
		{name: "composing only", msg: Message{From: juliet, To: alice, ChatState: ChatComposing}, ct: ContentTypeIsComposing},
		{name: "groupchat refused", msg: Message{From: juliet, To: alice, Type: stanza.GroupChatMessage, Body: "hi"}, err: ErrUnsupportedType},
		{name: "receipt only", msg: Message{From: juliet, To: alice, Type: stanza.ChatMessage}, err: ErrNoContent},
		{name: "bad chat state", msg: Message{From: juliet, To: alice, ChatState: "typing"}, err: ErrBadBody},
		{name: "body wins over chat state", msg: Message{From: juliet, To: alice, Body: "hi", ChatState: ChatActive}, ct: ContentTypeText},
		{name: "control char", msg: Message{From: juliet, To: alice, Body: "a\x01"}, err: ErrBadBody},
		{name: "to a partner", msg: Message{From: juliet, To: juliet, Body: "hi"}, err: ErrUnmappable},
		{name: "from our own domain", msg: Message{From: alice, To: alice, Body: "hi"}, err: ErrUnmappable},
		{name: "subject cannot inject headers", msg: Message{From: juliet, To: alice, Body: "hi", Subject: "x\r\nX-Evil: 1", Lang: "en\r\nX: y"}, ct: ContentTypeText},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm, err := m.MessageToSIP(&tt.msg)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.ContainsAny(sm.Subject+sm.ContentLanguage, "\r\n") {
				t.Errorf("header text with CR/LF: %q %q", sm.Subject, sm.ContentLanguage)
			}
			if sm.ContentType != tt.ct || sm.CallID != tt.cid {
				t.Errorf("Content-Type %q Call-ID %q, want %q %q", sm.ContentType, sm.CallID, tt.ct, tt.cid)
			}
			if sm.Contact == nil || sm.Contact.String() != "sip:juliet@xmpp.example;gr=balcony" || sm.From.String() != "sip:juliet@xmpp.example" {
				t.Errorf("From %s Contact %v: want the AOR and the GRUU", sm.From.String(), sm.Contact)
			}
		})
	}
}

func TestChatStateMapping(t *testing.T) {
	for _, r := range ChatStateMapping {
		t.Run(string(r.XMPP), func(t *testing.T) {
			body, err := AppendIsComposing(nil, r.XMPP)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(body, []byte("<state>"+r.SIP+"</state>")) {
				t.Fatalf("body %s lacks state %s", body, r.SIP)
			}
			if r.SIP == "active" != bytes.Contains(body, []byte("<refresh>60</refresh>")) {
				t.Errorf("refresh present iff active (RFC 3994 §3.2): %s", body)
			}
			back, err := ChatStateFromIsComposing(body)
			if err != nil {
				t.Fatal(err)
			}
			want := ChatPaused
			if r.SIP == "active" {
				want = ChatComposing
			}
			if back != want {
				t.Errorf("back = %s, want %s", back, want)
			}
		})
	}
}

func TestMapError(t *testing.T) {
	m := testMapper(t)
	_, addrErr := m.JIDFromURI(mustURI(t, "sip:x@nowhere.example"), SideXMPP)
	_, bodyErr := DecodeText([]byte("\xff"), "")
	tests := []struct {
		name   string
		err    error
		status int
		cond   stanza.Condition
	}{
		{"edge unreachable", fmt.Errorf("%w: dial tcp: connection refused", ErrEdgeUnreachable), 503, stanza.ServiceUnavailable},
		{"edge timeout", fmt.Errorf("%w: no final response", ErrEdgeTimeout), 504, stanza.RemoteServerTimeout},
		{"partner unreachable", fmt.Errorf("%w: lookup _xmpp-server._tcp: no such host", ErrPartnerUnreachable), 503, stanza.RemoteServerNotFound},
		{"partner timeout", ErrPartnerTimeout, 408, stanza.RemoteServerTimeout},
		{"unknown domain", addrErr, 404, stanza.ItemNotFound},
		{"bad bytes", bodyErr, 400, stanza.NotAcceptable},
		{"anything else", errors.New("boom"), 500, stanza.InternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MapError(tt.err)
			if got.Status != tt.status || got.Condition != tt.cond || got.Text == "" || got.Reason == "" {
				t.Errorf("MapError = %+v, want %d %s with text", got, tt.status, tt.cond)
			}
		})
	}
}

func TestErrorTables(t *testing.T) {
	tests := []struct {
		status int
		cond   stanza.Condition
	}{
		{404, stanza.ItemNotFound},
		{408, stanza.RemoteServerTimeout},
		{503, stanza.ServiceUnavailable},
		{403, stanza.Forbidden},
		{415, stanza.BadRequest},
		{480, stanza.RecipientUnavailable},
		{486, stanza.RecipientUnavailable},
		{302, stanza.Redirect},
		{399, stanza.Redirect},            // class fallback
		{499, stanza.BadRequest},          // class fallback
		{599, stanza.InternalServerError}, // class fallback
		{699, stanza.ServiceUnavailable},  // class fallback
		{200, stanza.UndefinedCondition},  // not a failure
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			if c, typ := ConditionForStatus(tt.status); c != tt.cond || typ == "" {
				t.Errorf("ConditionForStatus(%d) = %s/%s, want %s", tt.status, c, typ, tt.cond)
			}
		})
	}
	seen := map[stanza.Condition]bool{}
	for _, r := range XMPPToSIPErrors {
		t.Run(string(r.Condition), func(t *testing.T) {
			if seen[r.Condition] {
				t.Fatalf("condition listed twice")
			}
			seen[r.Condition] = true
			code, reason := StatusForCondition(r.Condition)
			if code < 300 || code > 699 || reason == "" {
				t.Errorf("StatusForCondition = %d %q", code, reason)
			}
		})
	}
	if len(seen) != 22 {
		t.Errorf("%d conditions mapped, RFC 6120 §8.3.3 defines 22", len(seen))
	}
	if code, _ := StatusForCondition("made-up"); code != 400 {
		t.Errorf("unknown condition -> %d, want 400 like undefined-condition", code)
	}
}

func TestMessageFromStanza(t *testing.T) {
	tests := []struct {
		name, xml     string
		body, subject string
		thread        string
		state         ChatState
	}{
		{"plain", `<message xmlns="jabber:server" from="a@b" to="c@d" type="chat"><body>hi</body></message>`, "hi", "", "", ""},
		{"lang match wins", `<message xmlns="jabber:server" from="a@b" to="c@d" xml:lang="de"><body xml:lang="en">hello</body><body xml:lang="de">hallo</body></message>`, "hallo", "", "", ""},
		{"first body when none matches", `<message xmlns="jabber:server" from="a@b" to="c@d" xml:lang="fr"><body xml:lang="en">hello</body><body xml:lang="de">hallo</body></message>`, "hello", "", "", ""},
		{"unknown chat state ignored", `<message xmlns="jabber:server" from="a@b" to="c@d"><typing xmlns="http://jabber.org/protocol/chatstates"/></message>`, "", "", "", ""},
		{"foreign payload skipped", `<message xmlns="jabber:server" from="a@b" to="c@d"><x xmlns="urn:other"><body>not this</body></x><body>this</body><paused xmlns="http://jabber.org/protocol/chatstates"/></message>`, "this", "", "", ChatPaused},
		{"client namespace", `<message xmlns="jabber:client" from="a@b" to="c@d"><subject>s</subject><thread>t1</thread><body>b</body></message>`, "b", "s", "t1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := DecodeMessage([]byte(tt.xml))
			if err != nil {
				t.Fatal(err)
			}
			if msg.Body != tt.body || msg.Subject != tt.subject || msg.Thread != tt.thread || msg.ChatState != tt.state {
				t.Errorf("got %+v", msg)
			}
		})
	}
	bad := []struct{ name, xml, want string }{
		{"element in body", `<message xmlns="jabber:server"><body>a<b>x</b></body></message>`, "inside text"},
		{"not a message", `<presence xmlns="jabber:server"/>`, "not a message stanza"},
		{"doctype", `<!DOCTYPE m [<!ENTITY e "x">]><message xmlns="jabber:server"><body>&e;</body></message>`, "XML directive"},
		{"truncated", `<message xmlns="jabber:server"><body>abc`, "EOF"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeMessage([]byte(tt.xml)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestInnerOnly covers gateway/xmpp's Stanza, whose Inner holds the payload
// without the stanza element: MessageFromStanza reads it to EOF, and
// AppendInner produces it.
func TestInnerOnly(t *testing.T) {
	m := Message{Body: "a & b ☂\r\n", Thread: "t1", Subject: "s", ChatState: ChatActive}
	inner := m.AppendInner(nil)
	got, err := MessageFromStanza(stanza.Message{ID: "x"}, xml.NewDecoder(bytes.NewReader(inner)))
	if err != nil {
		t.Fatal(err)
	}
	if got.Body != m.Body || got.Thread != m.Thread || got.Subject != m.Subject || got.ChatState != m.ChatState {
		t.Errorf("inner round trip = %+v, want %+v", got, m)
	}
	p := Presence{Show: "dnd", Status: "busy <now>"}
	gotP, err := PresenceFromStanza(stanza.Presence{}, xml.NewDecoder(bytes.NewReader(p.AppendInner(nil))))
	if err != nil || gotP.Show != p.Show || gotP.Status != p.Status {
		t.Errorf("presence inner round trip = %+v, %v", gotP, err)
	}
}
