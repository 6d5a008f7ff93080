package xmpp

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"mellium.im/xmpp/jid"
)

// Namespaces used on the wire.
const (
	NSServer   = "jabber:server"
	NSStream   = "http://etherx.jabber.org/streams"
	NSDialback = "jabber:server:dialback"
	// NSDialbackFeature is the XEP-0220 §2.4.2 feature announcing dialback errors.
	NSDialbackFeature = "urn:xmpp:features:dialback"
	NSStreamErrors    = "urn:ietf:params:xml:ns:xmpp-streams"
	NSStanzaErrors    = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSTLS             = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL            = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSPing            = "urn:xmpp:ping"
	NSDiscoInfo       = "http://jabber.org/protocol/disco#info"
	nsXML             = "http://www.w3.org/XML/1998/namespace"
)

// Stanza is one message, presence or iq element in the jabber:server
// namespace. Inner is the element's content as self-contained XML: every
// namespace used in it is declared in it, so it can be parsed or copied on
// its own.
type Stanza struct {
	Name     string // "message", "presence" or "iq"
	From, To jid.JID
	Type     string
	ID       string
	Lang     string // xml:lang
	Inner    []byte
}

// Bytes returns the stanza as XML in the jabber:server namespace, as sent
// on a stream (no xmlns attribute on the stanza element itself).
func (st *Stanza) Bytes() []byte {
	var b bytes.Buffer
	b.WriteByte('<')
	b.WriteString(st.Name)
	attr := func(name, v string) {
		if v == "" {
			return
		}
		b.WriteByte(' ')
		b.WriteString(name)
		b.WriteString(`='`)
		escapeAttr(&b, v)
		b.WriteByte('\'')
	}
	attr("from", st.From.String())
	attr("to", st.To.String())
	attr("type", st.Type)
	attr("id", st.ID)
	attr("xml:lang", st.Lang)
	if len(st.Inner) == 0 {
		b.WriteString("/>")
		return b.Bytes()
	}
	b.WriteByte('>')
	b.Write(st.Inner)
	b.WriteString("</")
	b.WriteString(st.Name)
	b.WriteByte('>')
	return b.Bytes()
}

func (st *Stanza) String() string { return string(st.Bytes()) }

// Decode unmarshals the whole stanza element into v (for example a
// mellium.im/xmpp/stanza.Message or a struct with a Body field).
func (st *Stanza) Decode(v any) error {
	d := xml.NewDecoder(io.MultiReader(
		bytes.NewReader([]byte(`<wrap xmlns='`+NSServer+`'>`)),
		bytes.NewReader(st.Bytes()),
		bytes.NewReader([]byte(`</wrap>`))))
	for {
		tok, err := d.Token()
		if err != nil {
			return fmt.Errorf("xmpp: decode %s stanza: %w", st.Name, err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == st.Name {
			return d.DecodeElement(v, &se)
		}
	}
}

// ParseStanza reads one stanza element from XML text such as
// "<message to='a@b' type='chat'><body>hi</body></message>"; an element
// without xmlns is taken to be in jabber:server.
func ParseStanza(text []byte) (*Stanza, error) {
	n, err := parseNode(text)
	if err != nil {
		return nil, err
	}
	return stanzaFromElement(n)
}

// parseNode reads the first element of text, in jabber:server by default.
func parseNode(text []byte) (*node, error) {
	d := newDecoder(io.MultiReader(
		strings.NewReader(`<wrap xmlns='`+NSServer+`'>`),
		bytes.NewReader(text),
		strings.NewReader(`</wrap>`)))
	if _, err := d.Token(); err != nil {
		return nil, err
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("xmpp: parse stanza: %w", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			continue
		case xml.StartElement:
			return readElement(d, t)
		default:
			return nil, fmt.Errorf("xmpp: parse stanza: found %T, expected an element", tok)
		}
	}
}

// Reply returns a stanza addressed back to st's sender, from st's
// recipient, with the same name and id.
func (st *Stanza) Reply(typ string) *Stanza {
	return &Stanza{Name: st.Name, From: st.To, To: st.From, Type: typ, ID: st.ID}
}

// Bounce returns the error reply RFC 6120 §8.3 prescribes for st: the
// original content followed by the error element.
func (st *Stanza) Bounce(e *Error) *Stanza {
	r := st.Reply("error")
	r.Lang = st.Lang
	var b bytes.Buffer
	b.Write(st.Inner)
	e.appendXML(&b)
	r.Inner = b.Bytes()
	return r
}

// Stanza error types (RFC 6120 §8.3.2).
const (
	ErrorTypeAuth     = "auth"
	ErrorTypeCancel   = "cancel"
	ErrorTypeContinue = "continue"
	ErrorTypeModify   = "modify"
	ErrorTypeWait     = "wait"
)

// Stanza error conditions used by xgw (RFC 6120 §8.3.3).
const (
	CondBadRequest            = "bad-request"
	CondFeatureNotImplemented = "feature-not-implemented"
	CondForbidden             = "forbidden"
	CondInternalServerError   = "internal-server-error"
	CondItemNotFound          = "item-not-found"
	CondNotAcceptable         = "not-acceptable"
	CondNotAuthorized         = "not-authorized"
	CondPolicyViolation       = "policy-violation"
	CondRecipientUnavailable  = "recipient-unavailable"
	CondRemoteConnFailed      = "remote-connection-failed" // XEP-0220 §2.4
	CondRemoteServerNotFound  = "remote-server-not-found"
	CondRemoteServerTimeout   = "remote-server-timeout"
	CondResourceConstraint    = "resource-constraint"
	CondServiceUnavailable    = "service-unavailable"
	CondUndefined             = "undefined-condition"
)

// Error is a stanza error (RFC 6120 §8.3), also used for dialback errors
// (XEP-0220 §2.4). A Handler returns one to bounce a stanza.
type Error struct {
	Type      string // ErrorType...
	Condition string // Cond...
	Text      string // optional human-readable text
}

func (e *Error) Error() string {
	if e.Text != "" {
		return fmt.Sprintf("xmpp: stanza error %s (%s): %s", e.Condition, e.Type, e.Text)
	}
	return fmt.Sprintf("xmpp: stanza error %s (%s)", e.Condition, e.Type)
}

func (e *Error) appendXML(b *bytes.Buffer) {
	b.WriteString(`<error type='`)
	escapeAttr(b, e.Type)
	b.WriteString(`'><`)
	b.WriteString(e.Condition)
	b.WriteString(` xmlns='` + NSStanzaErrors + `'/>`)
	if e.Text != "" {
		b.WriteString(`<text xmlns='` + NSStanzaErrors + `'>`)
		xml.EscapeText(b, []byte(e.Text))
		b.WriteString(`</text>`)
	}
	b.WriteString(`</error>`)
}

func escapeAttr(b *bytes.Buffer, s string) {
	xml.EscapeText(b, []byte(s))
}

// stanzaErrorOf returns the condition and text of the <error/> child of n.
func stanzaErrorOf(n *node) (cond, text string) {
	e := n.child("", "error")
	if e == nil {
		return CondUndefined, ""
	}
	for _, c := range e.Children {
		if c.Name.Space != NSStanzaErrors {
			continue
		}
		if c.Name.Local == "text" {
			text = c.Text
		} else {
			cond = c.Name.Local
		}
	}
	if cond == "" {
		cond = CondUndefined
	}
	return cond, text
}
