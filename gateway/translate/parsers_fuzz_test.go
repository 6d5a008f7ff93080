package translate

import (
	"errors"
	"testing"
	"unicode/utf8"
)

// bodyErr fails unless err is a *BodyError wrapping one of the documented
// sentinel errors, so every refusal maps to a SIP status.
func bodyErr(t *testing.T, err error) {
	t.Helper()
	var be *BodyError
	if !errors.As(err, &be) {
		t.Fatalf("error %T is not a *BodyError: %v", err, err)
	}
	if !errors.Is(err, ErrBadBody) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrUnsupportedMedia) {
		t.Fatalf("BodyError wraps %v, none of ErrBadBody, ErrTooLarge, ErrUnsupportedMedia", be.Err)
	}
}

// xmlSafe fails unless s is UTF-8 holding only characters XML 1.0 allows.
func xmlSafe(t *testing.T, what, s string) {
	t.Helper()
	if !utf8.ValidString(s) || checkXMLChars(s) != nil {
		t.Fatalf("%s %q is not UTF-8 text XML can carry", what, s)
	}
}

// FuzzChatStateFromIsComposing: hostile RFC 3994 bodies give composing,
// paused or a *BodyError.
func FuzzChatStateFromIsComposing(f *testing.F) {
	for _, s := range []string{
		`<?xml version="1.0" encoding="UTF-8"?><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>active</state><refresh>60</refresh></isComposing>`,
		`<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state> idle </state></isComposing>`,
		`<isComposing><state>typing</state></isComposing>`,
		`<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><isComposing><state>&b;</state></isComposing>`,
		`<isComposing><state>active</state>`,
		"<isComposing><state>\xff\xfe</state></isComposing>",
		`<isComposing><state>&#1;</state></isComposing>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		cs, err := ChatStateFromIsComposing(body)
		if err != nil {
			bodyErr(t, err)
			return
		}
		if cs != ChatComposing && cs != ChatPaused {
			t.Fatalf("state %q, expected composing or paused", cs)
		}
	})
}

// FuzzParseCPIM: hostile RFC 3862 wrappers give a *BodyError or a subject
// XML can carry and a body that is a suffix of the input.
func FuzzParseCPIM(f *testing.F) {
	for _, s := range []string{
		"From: <sip:a@example.com>\r\nSubject:;lang=fr Bonjour\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
		"Subject: x\n\nContent-Type: text/plain;charset=utf-8\n\nbody\r\n",
		"Subject: \x01\x0c\r\n\r\nContent-Type: text/plain\r\n\r\nx",
		"Subject: \xff\r\n\r\n\r\n",
		"no blank line",
		"\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseCPIM(b)
		if err != nil {
			bodyErr(t, err)
			return
		}
		xmlSafe(t, "CPIM subject", m.subject)
		if len(m.body) > len(b) || string(b[len(b)-len(m.body):]) != string(m.body) {
			t.Fatalf("body %q is not the tail of the input", m.body)
		}
	})
}

// FuzzDecodeText: any body under any charset label decodes to UTF-8 XML
// can carry, or a *BodyError; UTF-8 input is returned unchanged.
func FuzzDecodeText(f *testing.F) {
	for _, s := range []struct{ body, charset string }{
		{"hello", ""},
		{"gr\xfc\xdfe", "ISO-8859-1"},
		{"\xfe\xff\x00h\x00i", "UTF-16"},
		{"\x1b$)C\x0e!!", "ISO-2022-KR"},
		{"\x82\xa0", "Shift_JIS"},
		{"a\x00b", "utf-8"},
		{"\xef\xbf\xbe", ""},
		{"\x80", "us-ascii"},
		{"x", "x-unknown"},
	} {
		f.Add([]byte(s.body), s.charset)
	}
	f.Fuzz(func(t *testing.T, body []byte, charset string) {
		text, err := DecodeText(body, charset)
		if err != nil {
			bodyErr(t, err)
			return
		}
		xmlSafe(t, "text", text)
		if charset == "" && text != string(body) {
			t.Fatalf("UTF-8 body changed: %q -> %q", body, text)
		}
	})
}
