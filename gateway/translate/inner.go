package translate

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"unicode/utf8"

	"mellium.im/xmpp/stanza"
)

// MessageFromInner is MessageFromStanza for a payload held as bytes (the
// Inner of gateway/xmpp's Stanza). Chat messages almost always have the
// same plain shape: <body/>, <thread/>, <subject/>, a chat state and empty
// extension elements such as receipt requests. That shape is read by a
// small scanner that allocates only the strings it returns; anything else
// (prefixes, CDATA, comments, raw CR, nested extensions, bad text…) goes to
// encoding/xml through MessageFromStanza, which stays the reference: a fuzz
// test checks that both agree whenever the scanner accepts.
func MessageFromInner(s stanza.Message, inner []byte) (Message, error) {
	// Before the scanner: the bound must not depend on the payload's shape.
	if len(inner) > MaxStanza {
		return Message{}, &BodyError{Found: "a " + strconv.Itoa(len(inner)) + "-byte stanza payload", Expected: "at most " + strconv.Itoa(MaxStanza) + " bytes", Fix: "send smaller stanzas", Err: ErrTooLarge}
	}
	if msg, ok := scanInner(s, inner); ok {
		return msg, nil
	}
	return MessageFromStanza(s, xml.NewDecoder(bytes.NewReader(inner)))
}

// scanInner reads the plain shape or reports false.
func scanInner(s stanza.Message, b []byte) (Message, bool) {
	msg := Message{From: s.From, To: s.To, ID: s.ID, Type: s.Type, Lang: s.Lang}
	var bodies bodyChoice
	for {
		b = skipSpace(b)
		if len(b) == 0 {
			return msg, true
		}
		if len(b) < 2 || b[0] != '<' || !isNameStart(b[1]) {
			return Message{}, false
		}
		name, rest := scanName(b[1:])
		var ns, lang string
		var ok bool
		rest, ns, lang, ok = scanAttrs(rest)
		if !ok {
			return Message{}, false
		}
		empty := false
		switch {
		case len(rest) >= 2 && rest[0] == '/' && rest[1] == '>':
			empty, rest = true, rest[2:]
		case len(rest) >= 1 && rest[0] == '>':
			rest = rest[1:]
		default:
			return Message{}, false
		}
		if ns == NSChatStates {
			if !empty {
				return Message{}, false
			}
			if cs := ChatState(name); cs.Valid() {
				msg.ChatState = cs
			}
			b = rest
			continue
		}
		ours := ns == "" || ns == NSServer || ns == "jabber:client"
		if !ours || (name != "body" && name != "subject" && name != "thread") {
			if !empty {
				return Message{}, false // extension with content: let encoding/xml skip it
			}
			b = rest
			continue
		}
		var text string
		if !empty {
			text, rest, ok = scanText(rest, name)
			if !ok {
				return Message{}, false
			}
		}
		msg.setField(name, text, lang, &bodies)
		b = rest
	}
}

func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

func isNameStart(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }

// scanName reads an unprefixed ASCII name; a ':' stops it and then fails
// the attribute scan, sending prefixed names to encoding/xml.
func scanName(b []byte) (string, []byte) {
	i := 0
	for i < len(b) && (isAlnum(b[i]) || b[i] == '-' || b[i] == '_' || b[i] == '.') {
		i++
	}
	return internName(b[:i]), b[i:]
}

// internName avoids an allocation for the names the scanner compares.
func internName(b []byte) string {
	for _, n := range [...]string{"body", "thread", "subject", "active", "composing", "paused", "inactive", "gone", "request", "markable", "origin-id", "store", "no-store"} {
		if string(b) == n {
			return n
		}
	}
	return string(b)
}

// scanAttrs reads attributes up to '>' or "/>": xmlns and xml:lang are
// kept, other plain attributes are checked and ignored. Values with '&' or
// '<' go to encoding/xml.
func scanAttrs(b []byte) (rest []byte, ns, lang string, ok bool) {
	for {
		sp := len(b)
		b = skipSpace(b)
		if len(b) == 0 {
			return nil, "", "", false
		}
		if b[0] == '>' || b[0] == '/' {
			return b, ns, lang, true
		}
		if sp == len(b) { // attributes must be separated by space
			return nil, "", "", false
		}
		i := 0
		for i < len(b) && (isAlnum(b[i]) || b[i] == '-' || b[i] == '_' || b[i] == ':') {
			i++
		}
		key := b[:i]
		b = b[i:]
		if len(key) == 0 || !isNameStart(key[0]) || len(b) < 2 || b[0] != '=' || (b[1] != '"' && b[1] != '\'') {
			return nil, "", "", false
		}
		q := b[1]
		end := bytes.IndexByte(b[2:], q)
		if end < 0 {
			return nil, "", "", false
		}
		val := b[2 : 2+end]
		if bytes.ContainsAny(val, "&<\t\n\r") || !utf8.Valid(val) || checkXMLChars(val) != nil {
			return nil, "", "", false
		}
		switch string(key) {
		case "xmlns":
			switch string(val) {
			case NSChatStates:
				ns = NSChatStates
			case NSServer:
				ns = NSServer
			case "jabber:client":
				ns = "jabber:client"
			default:
				ns = string(val)
			}
		case "xml:lang":
			lang = string(val)
		default:
			if bytes.IndexByte(key, ':') >= 0 { // a prefixed attribute needs a declaration
				return nil, "", "", false
			}
		}
		b = b[2+end+1:]
	}
}

// scanText reads character data up to </name>, decoding the five
// predefined entities and character references. A raw CR (which XML turns
// into LF, XML 1.0 §2.11), other markup and characters outside XML 1.0 fail.
func scanText(b []byte, name string) (string, []byte, bool) {
	end := bytes.IndexByte(b, '<')
	if end < 0 {
		return "", nil, false
	}
	tail := b[end:]
	if len(tail) < len(name)+3 || tail[1] != '/' || string(tail[2:2+len(name)]) != name {
		return "", nil, false
	}
	after := skipSpace(tail[2+len(name):])
	if len(after) == 0 || after[0] != '>' {
		return "", nil, false
	}
	raw := b[:end]
	if bytes.IndexByte(raw, '\r') >= 0 || bytes.Contains(raw, []byte("]]>")) || !utf8.Valid(raw) {
		return "", nil, false
	}
	var text string
	if bytes.IndexByte(raw, '&') < 0 {
		text = string(raw)
	} else {
		out := make([]byte, 0, len(raw))
		for len(raw) > 0 {
			i := bytes.IndexByte(raw, '&')
			if i < 0 {
				out = append(out, raw...)
				break
			}
			out = append(out, raw[:i]...)
			raw = raw[i:]
			semi := bytes.IndexByte(raw, ';')
			if semi < 0 {
				return "", nil, false
			}
			r, ok := entity(raw[1:semi])
			if !ok {
				return "", nil, false
			}
			out = utf8.AppendRune(out, r)
			raw = raw[semi+1:]
		}
		text = string(out)
	}
	if checkXMLChars(text) != nil {
		return "", nil, false
	}
	return text, after[1:], true
}

func entity(e []byte) (rune, bool) {
	switch string(e) {
	case "amp":
		return '&', true
	case "lt":
		return '<', true
	case "gt":
		return '>', true
	case "quot":
		return '"', true
	case "apos":
		return '\'', true
	}
	if len(e) < 2 || e[0] != '#' {
		return 0, false
	}
	var n uint64
	var err error
	if e[1] == 'x' {
		n, err = strconv.ParseUint(string(e[2:]), 16, 32)
	} else {
		n, err = strconv.ParseUint(string(e[1:]), 10, 32)
	}
	// A character reference is not line-end normalized: &#xD; is a CR.
	r := rune(n)
	if err != nil || !utf8.ValidRune(r) {
		return 0, false
	}
	return r, true
}
