package xmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"mellium.im/xmpp/jid"
)

// maxDepth bounds element nesting inside one stanza; the byte limit
// already bounds the total, this keeps recursion shallow.
const maxDepth = 64

// node is one element read from a stream: enough of a tree to route
// stanzas, read features and dialback elements, and re-serialise content.
type node struct {
	Name     xml.Name
	Attr     []xml.Attr
	Children []*node
	Text     string // character data directly inside this element
	// order interleaves text and children for faithful re-serialisation:
	// a nil entry stands for the next text chunk in chunks.
	order  []*node
	chunks []string
}

func (n *node) attr(local string) string {
	for _, a := range n.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

func (n *node) hasAttr(local string) bool {
	for _, a := range n.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return true
		}
	}
	return false
}

func (n *node) child(space, local string) *node {
	for _, c := range n.Children {
		if c.Name.Local == local && (space == "" || c.Name.Space == space) {
			return c
		}
	}
	return nil
}

// errRestricted marks XML that RFC 6120 §11.1 forbids on a stream.
var errRestricted = errors.New("restricted XML")

func newDecoder(r io.Reader) *xml.Decoder {
	d := xml.NewDecoder(r)
	d.Strict = true
	// No Entity map and no CharsetReader: only the five predefined entities
	// and UTF-8 are accepted, so entity-expansion bombs cannot work.
	return d
}

// readElement reads the rest of the element that start opened.
func readElement(d *xml.Decoder, start xml.StartElement) (*node, error) {
	return readNode(d, start, 0)
}

func readNode(d *xml.Decoder, start xml.StartElement, depth int) (*node, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: elements nested deeper than %d", errRestricted, maxDepth)
	}
	n := &node{Name: start.Name, Attr: start.Attr}
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			c, err := readNode(d, t, depth+1)
			if err != nil {
				return nil, err
			}
			n.Children = append(n.Children, c)
			n.order = append(n.order, c)
		case xml.EndElement:
			n.Text = text.String()
			return n, nil
		case xml.CharData:
			text.Write(t)
			n.chunks = append(n.chunks, string(t))
			n.order = append(n.order, nil)
		case xml.Comment:
			return nil, fmt.Errorf("%w: comment inside <%s/>", errRestricted, start.Name.Local)
		case xml.ProcInst:
			return nil, fmt.Errorf("%w: processing instruction <?%s?> inside <%s/>", errRestricted, t.Target, start.Name.Local)
		case xml.Directive:
			return nil, fmt.Errorf("%w: DTD or directive <!%.20s> inside <%s/>", errRestricted, t, start.Name.Local)
		}
	}
}

// innerXML serialises n's content with every namespace declared where it
// is used, so the result stands alone.
func (n *node) innerXML() []byte {
	var b bytes.Buffer
	n.writeContent(&b)
	return b.Bytes()
}

func (n *node) writeContent(b *bytes.Buffer) {
	ci := 0
	for _, c := range n.order {
		if c == nil {
			xml.EscapeText(b, []byte(n.chunks[ci]))
			ci++
			continue
		}
		c.write(b, n.Name.Space)
	}
}

func (n *node) write(b *bytes.Buffer, parentSpace string) {
	b.WriteByte('<')
	b.WriteString(n.Name.Local)
	if n.Name.Space != parentSpace {
		b.WriteString(` xmlns='`)
		escapeAttr(b, n.Name.Space)
		b.WriteByte('\'')
	}
	prefixes := 0
	for _, a := range n.Attr {
		switch {
		case a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns"):
			continue // declarations are regenerated
		case a.Name.Space == "":
			b.WriteString(" " + a.Name.Local)
		case a.Name.Space == nsXML || a.Name.Space == "xml":
			b.WriteString(" xml:" + a.Name.Local)
		default:
			prefixes++
			p := fmt.Sprintf("a%d", prefixes)
			b.WriteString(" xmlns:" + p + "='")
			escapeAttr(b, a.Name.Space)
			b.WriteString("' " + p + ":" + a.Name.Local)
		}
		b.WriteString(`='`)
		escapeAttr(b, a.Value)
		b.WriteByte('\'')
	}
	if len(n.order) == 0 {
		b.WriteString("/>")
		return
	}
	b.WriteByte('>')
	n.writeContent(b)
	b.WriteString("</" + n.Name.Local + ">")
}

// stanzaFromElement converts a jabber:server message/presence/iq element.
// Addresses that are present must be valid JIDs.
func stanzaFromElement(n *node) (*Stanza, error) {
	if n.Name.Space != NSServer {
		return nil, streamErr(SECInvalidNamespace, "<%s/> in namespace %q, expected %s", n.Name.Local, n.Name.Space, NSServer)
	}
	switch n.Name.Local {
	case "message", "presence", "iq":
	default:
		return nil, streamErr(SECUnsupportedStanzaType, "<%s/> is not a stanza (expected message, presence or iq)", n.Name.Local)
	}
	st := &Stanza{Name: n.Name.Local, Type: n.attr("type"), ID: n.attr("id"), Inner: n.innerXML()}
	for _, a := range n.Attr {
		if a.Name.Local == "lang" && (a.Name.Space == nsXML || a.Name.Space == "xml") {
			st.Lang = a.Value
		}
	}
	for _, f := range []struct {
		name string
		dst  *jid.JID
	}{{"from", &st.From}, {"to", &st.To}} {
		if v := n.attr(f.name); v != "" {
			j, err := jid.Parse(v)
			if err != nil {
				return nil, streamErr(SECImproperAddressing, "<%s %s='%s'>: not a valid JID: %v", st.Name, f.name, v, err)
			}
			*f.dst = j
		}
	}
	return st, nil
}
