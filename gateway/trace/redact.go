package trace

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// marker replaces hidden content; n counts the bytes hidden.
func marker(n int) string { return fmt.Sprintf("[%d bytes redacted]", n) }

// sipHead is what the trace reads from a SIP message's headers.
type sipHead struct {
	request          bool
	callID           string
	fromHost, toHost string
}

// domains returns ours and the partner's. The SIP side faces the Edge of
// our own SIP domains: a request we receive comes from one of our users
// (From) for a federated address (To), a request we send the other way
// round; a response keeps its request's From and To.
func (h sipHead) domains(dir Dir) (local, remote string) {
	if (dir == In) == h.request {
		return h.fromHost, h.toHost
	}
	return h.toHost, h.fromHost
}

// RedactSIP returns msg with its start line and headers and, unless
// bodies, its body replaced by the marker; credentials in Authorization
// and Proxy-Authorization are hidden always. Content-Length stays, so the
// reader still sees how large the body was.
func RedactSIP(msg []byte, bodies bool) ([]byte, sipHead) {
	head, body, sep := msg, []byte(nil), ""
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		head, body, sep = msg[:i], msg[i+4:], "\r\n\r\n"
	} else if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		head, body, sep = msg[:i], msg[i+2:], "\n\n"
	}
	var h sipHead
	var out bytes.Buffer
	lines := strings.SplitAfter(string(head), "\n")
	for i, line := range lines {
		if i == 0 {
			h.request = !strings.HasPrefix(line, "SIP/2.0 ")
			out.WriteString(line)
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			out.WriteString(line)
			continue
		}
		v := strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "call-id", "i":
			h.callID = v
		case "from", "f":
			h.fromHost = uriHost(v)
		case "to", "t":
			h.toHost = uriHost(v)
		case "authorization", "proxy-authorization":
			scheme, _, _ := strings.Cut(v, " ")
			end := line[len(strings.TrimRight(line, "\r\n")):]
			out.WriteString(name + ": " + scheme + " [credentials redacted]" + end)
			continue
		}
		out.WriteString(line)
	}
	out.WriteString(sep)
	if len(body) > 0 && !bodies {
		out.WriteString(marker(len(body)))
	} else {
		out.Write(body)
	}
	return out.Bytes(), h
}

// uriHost is the host of the SIP URI in a From or To value, lower case.
func uriHost(v string) string {
	i := strings.Index(strings.ToLower(v), "sip")
	if i < 0 {
		return ""
	}
	v = v[i:]
	_, rest, ok := strings.Cut(v, ":")
	if !ok {
		return ""
	}
	if at := strings.IndexByte(rest, '@'); at >= 0 {
		rest = rest[at+1:]
	}
	if end := strings.IndexAny(rest, ">;:?, "); end >= 0 {
		rest = rest[:end]
	}
	return strings.ToLower(rest)
}

// Namespaces the XML redaction knows; a fragment (one written element) may
// use the stream header's prefixes without declaring them.
const (
	nsServer   = "jabber:server"
	nsStream   = "http://etherx.jabber.org/streams"
	nsDialback = "jabber:server:dialback"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
)

// xmlInfo is what the trace reads from XMPP bytes.
type xmlInfo struct{ thread string }

// secret reports elements whose content is hidden even with bodies:
// dialback keys (XEP-0220) and SASL exchanges (RFC 6120 §6.4).
func secret(space, local string) bool {
	switch space {
	case nsDialback:
		return local == "result" || local == "verify"
	case nsSASL:
		return local == "auth" || local == "success" || local == "response" || local == "challenge"
	}
	return false
}

// content reports elements whose text is a user's: message bodies and
// subjects, presence status, PIDF notes.
func content(local string) bool {
	switch local {
	case "body", "subject", "status", "note":
		return true
	}
	return false
}

// RedactXML returns the XML bytes (a stream header, one or more elements,
// a closing tag) with the content of secret elements, and unless bodies
// of content elements, replaced by the marker. Everything else is kept
// byte for byte: element names, attributes, structure. What cannot be
// parsed is hidden too, since it could hold anything.
func RedactXML(b []byte, bodies bool) ([]byte, xmlInfo) {
	var info xmlInfo
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	scopes := []map[string]string{{"": nsServer, "stream": nsStream, "db": nsDialback,
		"xml": "http://www.w3.org/XML/1998/namespace"}}
	resolve := func(prefix string) string {
		for i := len(scopes) - 1; i >= 0; i-- {
			if ns, ok := scopes[i][prefix]; ok {
				return ns
			}
		}
		return prefix
	}
	var out bytes.Buffer
	copied := 0 // b[:copied] is in out
	for {
		prev := int(d.InputOffset())
		tok, err := d.RawToken()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if rest := len(b) - prev; rest > 0 {
				out.Write(b[copied:prev])
				out.WriteString(fmt.Sprintf("[%d bytes unparsed, redacted]", rest))
				copied = len(b)
			}
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			scope := map[string]string{}
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					scope[""] = a.Value
				case a.Name.Space == "xmlns":
					scope[a.Name.Local] = a.Value
				}
			}
			scopes = append(scopes, scope)
			space := resolve(t.Name.Space)
			hide := secret(space, t.Name.Local) || (!bodies && content(t.Name.Local))
			if !hide && t.Name.Local != "thread" {
				continue
			}
			// Read to the matching end tag; inner is what lies between.
			start := int(d.InputOffset())
			end, text, ok := skipElement(d)
			scopes = scopes[:len(scopes)-1]
			if !ok {
				out.Write(b[copied:start])
				out.WriteString(fmt.Sprintf("[%d bytes unparsed, redacted]", len(b)-start))
				copied = len(b)
				return out.Bytes(), info
			}
			if t.Name.Local == "thread" && info.thread == "" {
				info.thread = strings.TrimSpace(text)
			}
			if hide && end > start {
				out.Write(b[copied:start])
				out.WriteString(marker(end - start))
				copied = end
			}
		case xml.EndElement:
			if len(scopes) > 1 {
				scopes = scopes[:len(scopes)-1]
			}
		}
	}
	out.Write(b[copied:])
	return out.Bytes(), info
}

// skipElement reads up to the end tag of the element just opened and
// returns the offset where that end tag starts and the text inside.
func skipElement(d *xml.Decoder) (end int, text string, ok bool) {
	depth := 0
	var sb strings.Builder
	for {
		prev := int(d.InputOffset())
		tok, err := d.RawToken()
		if err != nil {
			return 0, "", false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			if depth == 0 {
				return prev, sb.String(), true
			}
			depth--
		case xml.CharData:
			if sb.Len() < 1024 {
				sb.Write(t)
			}
		}
	}
}
