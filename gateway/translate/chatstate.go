package translate

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// NSChatStates is the XEP-0085 namespace.
const NSChatStates = "http://jabber.org/protocol/chatstates"

// NSIsComposing is the RFC 3994 namespace; ContentTypeIsComposing its MIME type.
const (
	NSIsComposing          = "urn:ietf:params:xml:ns:im-iscomposing"
	ContentTypeIsComposing = "application/im-iscomposing+xml"
)

// ChatState is an XEP-0085 §2 chat state notification.
type ChatState string

// The five XEP-0085 states.
const (
	ChatActive    ChatState = "active"
	ChatComposing ChatState = "composing"
	ChatPaused    ChatState = "paused"
	ChatInactive  ChatState = "inactive"
	ChatGone      ChatState = "gone"
)

// Valid reports whether s is one of the five XEP-0085 states.
func (s ChatState) Valid() bool {
	switch s {
	case ChatActive, ChatComposing, ChatPaused, ChatInactive, ChatGone:
		return true
	}
	return false
}

// ComposingRefresh is the refresh interval we announce with state "active"
// (RFC 3994 §3.2: the sender refreshes no sooner than every 60 s; the
// receiver times the state out after 120 s without refresh).
const ComposingRefresh = 60 * time.Second

// IsComposing is an RFC 3994 §5 isComposing document.
type IsComposing struct {
	XMLName     xml.Name `xml:"urn:ietf:params:xml:ns:im-iscomposing isComposing"`
	State       string   `xml:"state"`
	LastActive  string   `xml:"lastactive,omitempty"`
	ContentType string   `xml:"contenttype,omitempty"`
	Refresh     int      `xml:"refresh,omitempty"`
}

// ChatStateMapping is the XEP-0085 <-> RFC 3994 table, as data so the README
// can cite it. RFC 3994 knows only "active" (composing) and "idle".
//
//	XEP-0085   -> RFC 3994         RFC 3994 -> XEP-0085
//	composing  -> active, refresh  active   -> composing
//	paused     -> idle             idle     -> paused
//	active     -> idle
//	inactive   -> idle
//	gone       -> idle
//
// A message with a body ends composing on both sides (RFC 3994 §3.3,
// XEP-0085 §5.2), so no isComposing is sent alongside a text MESSAGE.
var ChatStateMapping = []struct {
	XMPP ChatState
	SIP  string
}{
	{ChatComposing, "active"},
	{ChatPaused, "idle"},
	{ChatActive, "idle"},
	{ChatInactive, "idle"},
	{ChatGone, "idle"},
}

// AppendIsComposing appends the RFC 3994 document for an XEP-0085 state.
func AppendIsComposing(dst []byte, s ChatState) ([]byte, error) {
	state := ""
	for _, r := range ChatStateMapping {
		if r.XMPP == s {
			state = r.SIP
		}
	}
	if state == "" {
		return dst, fmt.Errorf("translate: chat state %q is not one of XEP-0085's active, composing, paused, inactive, gone: %w", s, ErrBadBody)
	}
	dst = append(dst, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<isComposing xmlns="`+NSIsComposing+`"><state>`...)
	dst = append(dst, state...)
	dst = append(dst, "</state><contenttype>text/plain</contenttype>"...)
	if state == "active" {
		dst = append(dst, "<refresh>"...)
		dst = strconv.AppendInt(dst, int64(ComposingRefresh/time.Second), 10)
		dst = append(dst, "</refresh>"...)
	}
	return append(dst, "</isComposing>\n"...), nil
}

// MaxIsComposing bounds an isComposing body; real ones are ~300 bytes.
const MaxIsComposing = 4 << 10

// ChatStateFromIsComposing maps an RFC 3994 body to an XEP-0085 state:
// active -> composing, idle -> paused.
func ChatStateFromIsComposing(body []byte) (ChatState, error) {
	var doc IsComposing
	if err := decodeXMLBounded(body, MaxIsComposing, &doc); err != nil {
		return "", fmt.Errorf("translate: isComposing body (RFC 3994 §5): %w", err)
	}
	switch strings.TrimSpace(doc.State) {
	case "active":
		return ChatComposing, nil
	case "idle":
		return ChatPaused, nil
	}
	return "", &BodyError{Found: fmt.Sprintf("isComposing state %q", doc.State), Expected: `"active" or "idle" (RFC 3994 §5)`, Fix: "send a valid RFC 3994 document", Err: ErrBadBody}
}

// decodeXMLBounded unmarshals a small XML document from an untrusted peer:
// the size is bounded, DOCTYPE declarations (and so entity definitions) are
// refused, and only the predefined XML entities are accepted (encoding/xml
// in strict mode expands nothing else).
func decodeXMLBounded(body []byte, limit int, v any) error {
	if len(body) > limit {
		return &BodyError{Found: fmt.Sprintf("%d bytes", len(body)), Expected: fmt.Sprintf("at most %d bytes", limit), Fix: "send a smaller document", Err: ErrTooLarge}
	}
	d := xml.NewTokenDecoder(noDirectives{xml.NewDecoder(bytes.NewReader(body))})
	if err := d.Decode(v); err != nil {
		if errors.Is(err, errDirective) {
			return &BodyError{Found: "a <!DOCTYPE> or other declaration", Expected: "plain XML without DTD", Fix: "remove the DOCTYPE; entities are not accepted", Err: ErrBadBody}
		}
		return &BodyError{Found: "malformed XML (" + err.Error() + ")", Expected: "a well-formed document", Fix: "check the sender's XML", Err: ErrBadBody}
	}
	return nil
}

var errDirective = errors.New("XML directive")

// noDirectives passes tokens through and fails on <!...> directives.
type noDirectives struct{ d *xml.Decoder }

func (n noDirectives) Token() (xml.Token, error) {
	t, err := n.d.RawToken()
	if _, ok := t.(xml.Directive); ok {
		return nil, errDirective
	}
	return t, err
}
