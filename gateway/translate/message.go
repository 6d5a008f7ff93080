package translate

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"
	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// NSServer is the s2s stanza namespace (RFC 6120 §4.8.3).
const NSServer = "jabber:server"

// ContentTypeText is what the gateway always sends (RFC 7572 §5: UTF-8).
const ContentTypeText = "text/plain;charset=UTF-8"

// ErrNoContent: an XMPP message with neither a body nor a chat state (a
// receipt, a carbon, an empty ping…). RFC 7572 defines no SIP form for it.
var ErrNoContent = errors.New("message has no body and no chat state")

// ErrUnsupportedType: an XMPP message type RFC 7572 does not map (groupchat,
// error) or a SIP method other than MESSAGE.
var ErrUnsupportedType = errors.New("message type not translated")

// Message is the XMPP side of the seam: one <message/> stanza as plain
// fields. Type is chat when it comes from SIP (RFC 7572 §5). ChatState is an
// XEP-0085 notification, alone or next to a body.
type Message struct {
	From, To  jid.JID
	ID        string
	Thread    string
	Type      stanza.MessageType
	Subject   string
	Body      string
	ChatState ChatState
	Lang      string
}

// SIPMessage is the SIP side of the seam: the parts of a MESSAGE request
// (RFC 3428) the gateway sets. From, To and RequestURI are URIs without
// header parameters; Contact carries the sender's GRUU when the XMPP sender
// used a full JID, and is nil otherwise.
type SIPMessage struct {
	RequestURI      sip.Uri
	From, To        sip.Uri
	Contact         *sip.Uri
	CallID          string // "" lets sipgo's client generate one
	Subject         string
	ContentLanguage string
	ContentType     string
	Body            []byte
}

// MessageFromSIP translates a SIP MESSAGE from one of our SIP users into an
// XMPP <message type='chat'/> for a federated XMPP user (RFC 7572 §5, SIP
// to XMPP):
//
//	SIP                        XMPP
//	From (AOR)                 from (bare JID, or full JID when Contact is
//	                           a GRUU of that AOR: RFC 7247 §5.3)
//	Request-URI (else To)      to (a gr parameter becomes the resource)
//	Call-ID                    <thread/> (RFC 7572 §5 table)
//	Call-ID + CSeq             id: hex FNV-1a, so a retransmission gets the
//	                           same id and an error bounce can be matched
//	Subject                    <subject/>
//	Content-Language           xml:lang
//	body (text/plain, or       <body/>, UTF-8 (see DecodeText)
//	  message/cpim around it)
//	application/im-iscomposing+xml   chat state (RFC 3994 -> XEP-0085)
func (m *Mapper) MessageFromSIP(req *sip.Request) (Message, error) {
	if req.Method != sip.MESSAGE {
		return Message{}, fmt.Errorf("translate: %s request is not a MESSAGE: %w", req.Method, ErrUnsupportedType)
	}
	fromH, toH, callID := req.From(), req.To(), req.CallID()
	if fromH == nil || toH == nil || callID == nil {
		return Message{}, &BodyError{Found: "a MESSAGE without From, To or Call-ID", Expected: "the mandatory headers of RFC 3261 §8.1.1", Fix: "fix the sender", Err: ErrBadBody}
	}
	msg := Message{Type: stanza.ChatMessage, Thread: string(*callID)}
	var err error
	if msg.From, err = m.JIDFromURI(&fromH.Address, SideSIP); err != nil {
		return Message{}, err
	}
	if c := req.Contact(); c != nil && instanceID(&c.Address) != "" {
		if full, err := m.JIDFromURI(&c.Address, SideSIP); err == nil && full.Bare().Equal(msg.From) {
			msg.From = full
		}
	}
	target := &req.Recipient
	if target.User == "" {
		target = &toH.Address
	}
	if msg.To, err = m.JIDFromURI(target, SideXMPP); err != nil {
		return Message{}, err
	}
	var seq uint32
	if cs := req.CSeq(); cs != nil {
		seq = cs.SeqNo
	}
	msg.ID = stanzaID(msg.Thread, seq)
	if h := req.GetHeader("subject"); h != nil {
		msg.Subject = h.Value()
	}
	for _, f := range []struct{ name, v string }{{"Call-ID", msg.Thread}, {"Subject", msg.Subject}} {
		if !utf8.ValidString(f.v) {
			return Message{}, &BodyError{Found: f.name + " header that is not UTF-8", Expected: "UTF-8 header text (RFC 3261 §25.1 TEXT-UTF8)", Fix: "fix the sender", Err: ErrBadBody}
		}
		if err := checkXMLChars(f.v); err != nil {
			return Message{}, err
		}
	}
	if h := req.GetHeader("content-language"); h != nil {
		lang, _, _ := strings.Cut(h.Value(), ",")
		if lang = strings.TrimSpace(lang); isLangTag(lang) {
			msg.Lang = lang
		}
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	if err := msg.setContent(ct, req.Body(), 0); err != nil {
		return Message{}, err
	}
	return msg, nil
}

// setContent fills Body or ChatState from a SIP body. depth stops CPIM
// inside CPIM.
func (msg *Message) setContent(contentType string, body []byte, depth int) error {
	typ, charset := mediaType(contentType)
	switch typ {
	case "text/plain", "":
		// RFC 3261 §20.15 requires Content-Type with a body; a missing one is
		// read as text/plain, whose bytes DecodeText still checks.
		if len(body) == 0 {
			return &BodyError{Found: "an empty MESSAGE body", Expected: "text to deliver", Fix: "send text", Err: ErrBadBody}
		}
		text, err := DecodeText(body, charset)
		if err != nil {
			return err
		}
		msg.Body = text
	case ContentTypeIsComposing:
		cs, err := ChatStateFromIsComposing(body)
		if err != nil {
			return err
		}
		msg.ChatState = cs
	case "message/cpim":
		if depth > 0 {
			return &BodyError{Found: "message/cpim nested in message/cpim", Expected: "one CPIM wrapper (RFC 3862)", Fix: "unwrap the inner message", Err: ErrUnsupportedMedia}
		}
		cpim, err := parseCPIM(body)
		if err != nil {
			return err
		}
		if cpim.subject != "" && msg.Subject == "" {
			msg.Subject = cpim.subject
		}
		return msg.setContent(cpim.contentType, cpim.body, depth+1)
	case "multipart/alternative":
		if depth > 0 {
			return &BodyError{Found: "nested multipart body", Expected: "one level of multipart/alternative", Fix: "send plain text", Err: ErrUnsupportedMedia}
		}
		ct, part, err := plainAlternative(contentType, body)
		if err != nil {
			return err
		}
		return msg.setContent(ct, part, depth+1)
	default:
		return &BodyError{Found: "Content-Type " + contentType, Expected: "text/plain, message/cpim, multipart/alternative with a text/plain part, or " + ContentTypeIsComposing, Fix: "send plain text (RFC 7572 §5)", Err: ErrUnsupportedMedia}
	}
	return nil
}

// maxParts bounds the parts read from a multipart body.
const maxParts = 8

// plainAlternative picks the text/plain part of a multipart/alternative body
// (RFC 2046 §5.1.4: the parts are the same content; Lync and Skype for
// Business send text/plain next to text/html). The other alternatives carry
// the same text, so dropping them loses formatting only.
func plainAlternative(contentType string, body []byte) (string, []byte, error) {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil || params["boundary"] == "" {
		return "", nil, &BodyError{Found: "multipart/alternative without a usable boundary (" + contentType + ")", Expected: "a boundary parameter (RFC 2046 §5.1.1)", Fix: "fix the sender", Err: ErrBadBody}
	}
	r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var seen []string
	for i := 0; i < maxParts; i++ {
		part, err := r.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", nil, &BodyError{Found: "a malformed multipart body (" + err.Error() + ")", Expected: "RFC 2046 §5.1 multipart", Fix: "fix the sender", Err: ErrBadBody}
		}
		ct := part.Header.Get("Content-Type")
		seen = append(seen, ct)
		if typ, _ := mediaType(ct); typ != "text/plain" && typ != "" {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(part, MaxBody+1))
		if err != nil {
			return "", nil, &BodyError{Found: "a truncated multipart body (" + err.Error() + ")", Expected: "RFC 2046 §5.1 multipart", Fix: "fix the sender", Err: ErrBadBody}
		}
		switch cte := strings.ToLower(part.Header.Get("Content-Transfer-Encoding")); cte {
		case "", "7bit", "8bit", "binary":
		case "base64":
			if data, err = base64.StdEncoding.AppendDecode(nil, bytes.Join(bytes.Fields(data), nil)); err != nil {
				return "", nil, &BodyError{Found: "a text/plain part with broken base64 (" + err.Error() + ")", Expected: "valid base64", Fix: "fix the sender", Err: ErrBadBody}
			}
		case "quoted-printable":
			if data, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(data))); err != nil {
				return "", nil, &BodyError{Found: "a text/plain part with broken quoted-printable (" + err.Error() + ")", Expected: "valid quoted-printable", Fix: "fix the sender", Err: ErrBadBody}
			}
		default:
			return "", nil, &BodyError{Found: "Content-Transfer-Encoding " + cte, Expected: "7bit, 8bit, binary, base64 or quoted-printable", Fix: "send binary text", Err: ErrUnsupportedMedia}
		}
		if ct == "" {
			ct = "text/plain"
		}
		return ct, data, nil
	}
	return "", nil, &BodyError{Found: fmt.Sprintf("multipart/alternative with parts %q and no text/plain", seen), Expected: "a text/plain alternative", Fix: "enable plain text in the client, or send text/plain", Err: ErrUnsupportedMedia}
}

// stanzaID derives a stable stanza id from a SIP transaction identity:
// FNV-1a (64 bit) over Call-ID, a space and the CSeq number, inlined so it
// costs one allocation.
func stanzaID(callID string, seq uint32) string {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(callID); i++ {
		h = (h ^ uint64(callID[i])) * prime
	}
	var b [20]byte
	for _, c := range strconv.AppendUint(append(b[:0], ' '), uint64(seq), 10) {
		h = (h ^ uint64(c)) * prime
	}
	return string(strconv.AppendUint(append(b[:0], 's'), h, 16))
}

type cpimMessage struct {
	subject     string
	contentType string
	body        []byte
}

// parseCPIM reads an RFC 3862 §3 message: CPIM headers, a blank line, the
// MIME headers of the encapsulated object, a blank line, its content. Only
// Subject and the inner Content-Type are used: the addresses come from the
// SIP headers, which the Edge authenticated.
func parseCPIM(b []byte) (cpimMessage, error) {
	var out cpimMessage
	if len(b) > MaxBody {
		return out, &BodyError{Found: fmt.Sprintf("%d bytes of CPIM", len(b)), Expected: fmt.Sprintf("at most %d bytes", MaxBody), Fix: "split the message", Err: ErrTooLarge}
	}
	rest := b
	for block := 0; block < 2; block++ {
		for {
			line, tail, ok := cutLine(rest)
			if !ok {
				return out, &BodyError{Found: "message/cpim without the blank lines that end its header blocks", Expected: "RFC 3862 §3 layout", Fix: "fix the sender's CPIM encoding", Err: ErrBadBody}
			}
			rest = tail
			if len(line) == 0 {
				break
			}
			name, value, _ := bytes.Cut(line, []byte(":"))
			name = bytes.TrimSpace(name)
			value = bytes.TrimSpace(value)
			switch {
			case block == 0 && bytes.EqualFold(name, []byte("Subject")):
				// Subject:;lang=fr Bonjour — drop the parameters.
				if len(value) > 0 && value[0] == ';' {
					if i := bytes.IndexByte(value, ' '); i >= 0 {
						value = bytes.TrimSpace(value[i:])
					} else {
						value = nil
					}
				}
				// Dropped unless XML can carry it: a control character would make
				// the stanza ill-formed and the peer close the stream.
				if utf8.Valid(value) && checkXMLChars(value) == nil {
					out.subject = string(value)
				}
			case block == 1 && bytes.EqualFold(name, []byte("Content-Type")):
				out.contentType = string(value)
			}
		}
	}
	out.body = rest
	return out, nil
}

// cutLine splits at the first CRLF (or bare LF) and reports whether one was found.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, b, false
	}
	line = b[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, b[i+1:], true
}

// MessageToSIP translates an XMPP message from a federated user into the
// parts of a SIP MESSAGE for one of our SIP users (RFC 7572 §4, XMPP to SIP):
//
//	XMPP               SIP
//	to                 Request-URI (a resource becomes ;gr=, RFC 7247 §5.3)
//	                   and To (bare)
//	from               From (bare) and, with a resource, Contact ;gr=
//	<thread/>          Call-ID when it is a valid Call-ID (RFC 3261 §25.1
//	                   "word"), so SIP replies keep the thread; otherwise
//	                   sipgo generates one
//	<subject/>         Subject
//	xml:lang           Content-Language
//	<body/>            body, Content-Type text/plain;charset=UTF-8
//	chat state only    body application/im-iscomposing+xml (RFC 3994)
func (m *Mapper) MessageToSIP(msg *Message) (SIPMessage, error) {
	switch msg.Type {
	case stanza.ChatMessage, stanza.NormalMessage, stanza.HeadlineMessage, "":
	default:
		return SIPMessage{}, fmt.Errorf("translate: message type %q has no SIP MESSAGE form (RFC 7572 covers one-to-one chat): %w", msg.Type, ErrUnsupportedType)
	}
	var out SIPMessage
	var err error
	if out.RequestURI, err = m.URIFromJID(msg.To, SideSIP); err != nil {
		return SIPMessage{}, err
	}
	// URIFromJID sets URI parameters only for a resource (the GRUU).
	out.To = out.RequestURI
	out.To.UriParams = nil
	if out.From, err = m.URIFromJID(msg.From, SideXMPP); err != nil {
		return SIPMessage{}, err
	}
	if out.From.UriParams != nil {
		contact := out.From
		out.Contact = &contact
		out.From.UriParams = nil
	}
	if validCallID(msg.Thread) {
		out.CallID = msg.Thread
	}
	out.Subject = headerText(msg.Subject)
	if isLangTag(msg.Lang) {
		out.ContentLanguage = msg.Lang
	}
	switch {
	case msg.Body != "":
		if !utf8.ValidString(msg.Body) {
			return SIPMessage{}, &BodyError{Found: "a body that is not UTF-8", Expected: "UTF-8 text", Fix: "decode stanzas with encoding/xml", Err: ErrBadBody}
		}
		if err := checkXMLChars(msg.Body); err != nil {
			return SIPMessage{}, err
		}
		out.ContentType = ContentTypeText
		out.Body = []byte(msg.Body)
	case msg.ChatState != "":
		out.ContentType = ContentTypeIsComposing
		if out.Body, err = AppendIsComposing(nil, msg.ChatState); err != nil {
			return SIPMessage{}, err
		}
	default:
		return SIPMessage{}, fmt.Errorf("translate: message %q from %s: %w", msg.ID, msg.From, ErrNoContent)
	}
	return out, nil
}

// isLangTag reports whether s looks like a BCP 47 tag (RFC 3261 §20.13
// language-tag); anything else is not copied into a header or xml:lang.
func isLangTag(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

// headerText makes XMPP text safe for a one-line SIP header: control
// characters (CR and LF above all, which would inject headers) become
// spaces. Only the Subject goes through here; bodies are never altered.
func headerText(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// validCallID reports whether s fits RFC 3261 §25.1 callid = word ["@" word]
// and is short enough to be a sane header.
func validCallID(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	at := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlnum(c) || strings.IndexByte("-.!%*_+`'~()<>:\\\"/[]?{}", c) >= 0:
		case c == '@' && !at && i > 0 && i < len(s)-1:
			at = true
		default:
			return false
		}
	}
	return true
}

// Headers returns the headers besides From, To, Call-ID, CSeq and
// Content-Type that the request carries: Contact (the sender's GRUU),
// Subject and Content-Language. For callers that build the request
// themselves (gateway/sip's OutboundMessage.Headers).
func (s *SIPMessage) Headers() []sip.Header {
	var hs []sip.Header
	if s.Contact != nil {
		hs = append(hs, &sip.ContactHeader{Address: *s.Contact})
	}
	if s.Subject != "" {
		hs = append(hs, sip.NewHeader("Subject", s.Subject))
	}
	if s.ContentLanguage != "" {
		hs = append(hs, sip.NewHeader("Content-Language", s.ContentLanguage))
	}
	return hs
}

// Request builds the sipgo request. fromTag is the From tag (RFC 3261
// §8.1.1.3), e.g. sip.GenerateTagN(16); sipgo's client adds Via, CSeq,
// Max-Forwards and, when CallID is empty, Call-ID.
func (s *SIPMessage) Request(fromTag string) *sip.Request {
	req := sip.NewRequest(sip.MESSAGE, s.RequestURI)
	from := &sip.FromHeader{Address: s.From, Params: sip.HeaderParams{{K: "tag", V: fromTag}}}
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: s.To})
	if s.CallID != "" {
		cid := sip.CallIDHeader(s.CallID)
		req.AppendHeader(&cid)
	}
	for _, h := range s.Headers() {
		req.AppendHeader(h)
	}
	ct := sip.ContentTypeHeader(s.ContentType)
	req.AppendHeader(&ct)
	req.SetBody(s.Body)
	return req
}

// AppendXML appends the stanza as jabber:server XML. Text is escaped so that
// it parses back byte for byte: CR is written as &#xD; because XML parsers
// turn literal CRLF into LF (XML 1.0 §2.11).
func (msg *Message) AppendXML(dst []byte) []byte {
	dst = append(dst, `<message xmlns="`+NSServer+`"`...)
	dst = appendAttr(dst, "from", msg.From.String())
	dst = appendAttr(dst, "to", msg.To.String())
	typ := msg.Type
	if typ == "" {
		typ = stanza.NormalMessage
	}
	dst = appendAttr(dst, "type", string(typ))
	if msg.ID != "" {
		dst = appendAttr(dst, "id", msg.ID)
	}
	if msg.Lang != "" {
		dst = appendAttr(dst, "xml:lang", msg.Lang)
	}
	dst = append(dst, '>')
	dst = msg.AppendInner(dst)
	return append(dst, "</message>"...)
}

// AppendInner appends the stanza's payload without the <message/> element:
// subject, body, thread and chat state, each self-contained (the chat state
// declares its namespace; the others inherit jabber:server). This is the
// Inner of gateway/xmpp's Stanza.
func (msg *Message) AppendInner(dst []byte) []byte {
	if msg.Subject != "" {
		dst = append(dst, "<subject>"...)
		dst = appendEscaped(dst, msg.Subject, false)
		dst = append(dst, "</subject>"...)
	}
	if msg.Body != "" {
		dst = append(dst, "<body>"...)
		dst = appendEscaped(dst, msg.Body, false)
		dst = append(dst, "</body>"...)
	}
	if msg.Thread != "" {
		dst = append(dst, "<thread>"...)
		dst = appendEscaped(dst, msg.Thread, false)
		dst = append(dst, "</thread>"...)
	}
	if msg.ChatState != "" {
		dst = append(dst, '<')
		dst = append(dst, msg.ChatState...)
		dst = append(dst, ` xmlns="`+NSChatStates+`"/>`...)
	}
	return dst
}

func appendAttr(dst []byte, name, value string) []byte {
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, `="`...)
	dst = appendEscaped(dst, value, true)
	return append(dst, '"')
}

func appendEscaped(dst []byte, s string, attr bool) []byte {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\r':
			esc = "&#xD;"
		case '"':
			if !attr {
				continue
			}
			esc = "&quot;"
		case '\n', '\t':
			if !attr {
				continue
			}
			esc = "&#xA;"
			if s[i] == '\t' {
				esc = "&#x9;"
			}
		default:
			continue
		}
		dst = append(dst, s[last:i]...)
		dst = append(dst, esc...)
		last = i + 1
	}
	return append(dst, s[last:]...)
}

// TokenReader returns the stanza as tokens for mellium's Session.Send.
func (msg *Message) TokenReader() xml.TokenReader {
	var parts []xml.TokenReader
	text := func(local, s string) {
		if s != "" {
			parts = append(parts, xmlstream.Wrap(xmlstream.Token(xml.CharData(s)), xml.StartElement{Name: xml.Name{Local: local}}))
		}
	}
	text("subject", msg.Subject)
	text("body", msg.Body)
	text("thread", msg.Thread)
	if msg.ChatState != "" {
		parts = append(parts, xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: NSChatStates, Local: string(msg.ChatState)}}))
	}
	typ := msg.Type
	if typ == "" {
		typ = stanza.NormalMessage
	}
	return stanza.Message{
		XMLName: xml.Name{Space: NSServer, Local: "message"},
		ID:      msg.ID, To: msg.To, From: msg.From, Lang: msg.Lang, Type: typ,
	}.Wrap(xmlstream.MultiReader(parts...))
}

// MaxStanza bounds DecodeMessage's input.
const MaxStanza = 256 << 10

// DecodeMessage parses one <message/> stanza from bytes (tests, golden
// files, raw stream buffers).
func DecodeMessage(data []byte) (Message, error) {
	if len(data) > MaxStanza {
		return Message{}, &BodyError{Found: fmt.Sprintf("a %d-byte stanza", len(data)), Expected: fmt.Sprintf("at most %d bytes", MaxStanza), Fix: "send smaller stanzas", Err: ErrTooLarge}
	}
	d := xml.NewTokenDecoder(noDirectives{xml.NewDecoder(bytes.NewReader(data))})
	for {
		tok, err := d.Token()
		if err != nil {
			return Message{}, fmt.Errorf("translate: no <message/> in input: %w", err)
		}
		if start, ok := tok.(xml.StartElement); ok {
			if start.Name.Local != "message" {
				return Message{}, fmt.Errorf("translate: <%s/> is not a message stanza: %w", start.Name.Local, ErrUnsupportedType)
			}
			s, err := stanza.NewMessage(start)
			if err != nil {
				return Message{}, fmt.Errorf("translate: message attributes: %w", err)
			}
			return MessageFromStanza(s, d)
		}
	}
}

// MessageFromStanza reads the payload of a message whose start element was
// already consumed (what mux.MessageHandler gets): the first <body/> whose
// xml:lang matches the stanza's (or has none), <subject/>, <thread/> and an
// XEP-0085 state; other payloads are skipped. r must stop at the message's
// end element or continue past it (both are handled).
func MessageFromStanza(s stanza.Message, r xml.TokenReader) (Message, error) {
	msg := Message{From: s.From, To: s.To, ID: s.ID, Type: s.Type, Lang: s.Lang}
	var bodies bodyChoice
	for {
		tok, err := r.Token()
		if err == io.EOF {
			return msg, nil
		}
		if err != nil {
			return Message{}, fmt.Errorf("translate: reading message %q: %w", s.ID, err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return msg, nil // the </message>
		case xml.StartElement:
			if t.Name.Space == NSChatStates {
				// An element XEP-0085 does not define is skipped like any
				// unknown payload.
				if cs := ChatState(t.Name.Local); cs.Valid() {
					msg.ChatState = cs
				}
				if err := xmlstream.Skip(r); err != nil {
					return Message{}, err
				}
				continue
			}
			if t.Name.Space != NSServer && t.Name.Space != "jabber:client" && t.Name.Space != "" {
				if err := xmlstream.Skip(r); err != nil {
					return Message{}, err
				}
				continue
			}
			switch t.Name.Local {
			case "body", "subject", "thread":
				text, err := readText(r)
				if err != nil {
					return Message{}, fmt.Errorf("translate: <%s/> of message %q: %w", t.Name.Local, s.ID, err)
				}
				msg.setField(t.Name.Local, text, attrLang(t), &bodies)
			default:
				if err := xmlstream.Skip(r); err != nil {
					return Message{}, err
				}
			}
		}
	}
}

// bodyChoice tracks which <body/> a message took so far.
type bodyChoice struct{ set, match bool }

// setField applies one <body/>, <subject/> or <thread/> with its text and
// xml:lang. RFC 6121 §5.2.3: several bodies differ by xml:lang; prefer
// the stanza's language (msg.Lang), else the first. The first subject
// wins, the last thread.
func (msg *Message) setField(name, text, lang string, bodies *bodyChoice) {
	switch name {
	case "body":
		match := lang == "" || lang == msg.Lang
		if !bodies.set || match && !bodies.match {
			msg.Body, bodies.set, bodies.match = text, true, match
		}
	case "subject":
		if msg.Subject == "" {
			msg.Subject = text
		}
	case "thread":
		msg.Thread = text
	}
}

func attrLang(t xml.StartElement) string {
	for _, a := range t.Attr {
		if a.Name.Local == "lang" && (a.Name.Space == "xml" || a.Name.Space == "http://www.w3.org/XML/1998/namespace") {
			return a.Value
		}
	}
	return ""
}

// readText collects character data up to the end of the current element,
// refusing child elements.
func readText(r xml.TokenReader) (string, error) {
	var buf []byte
	for {
		tok, err := r.Token()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.CharData:
			buf = append(buf, t...)
			if len(buf) > MaxBody {
				return "", &BodyError{Found: "text over the size bound", Expected: fmt.Sprintf("at most %d bytes", MaxBody), Fix: "split the message", Err: ErrTooLarge}
			}
		case xml.EndElement:
			return string(buf), nil
		case xml.StartElement:
			return "", &BodyError{Found: "element <" + t.Name.Local + "/> inside text", Expected: "character data only", Fix: "send plain text", Err: ErrBadBody}
		}
	}
}
