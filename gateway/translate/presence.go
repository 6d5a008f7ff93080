package translate

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// Namespaces and MIME type of PIDF (RFC 3863), its data model (RFC 4479) and
// RPID (RFC 4480).
const (
	NSPIDF          = "urn:ietf:params:xml:ns:pidf"
	NSPIDFDataModel = "urn:ietf:params:xml:ns:pidf:data-model"
	NSRPID          = "urn:ietf:params:xml:ns:pidf:rpid"
	ContentTypePIDF = "application/pidf+xml"
)

// ErrBadPIDF: a PIDF body that is malformed or hostile (SIP 400).
var ErrBadPIDF = errors.New("PIDF document refused")

// MaxPIDF bounds a PIDF body. Real documents are a few KiB; the bound keeps
// a hostile NOTIFY from costing memory.
const MaxPIDF = 64 << 10

// Presence is the XMPP side of the seam for a <presence/> stanza. Type is ""
// for available; Show is "", away, chat, dnd or xa (RFC 6121 §4.7.2.1).
type Presence struct {
	From, To jid.JID
	ID       string
	Type     stanza.PresenceType
	Show     string
	Status   string
	Lang     string
}

// ShowMapping is one row of the presence table.
type ShowMapping struct {
	Show     string // XMPP <show/>; "" is plain available
	Basic    string // PIDF <basic/>
	Activity string // RPID activity written for it; "" for none
}

// PresenceMapping is the RFC 7248 §5 notification mapping (XMPP <show/> <-> PIDF/RPID), as data so
// the README can cite it:
//
//	XMPP                      PIDF <basic>   RPID <activities>
//	available (no <show/>)    open           -
//	chat                      open           - (RPID has no "free for chat")
//	away                      open           away
//	xa                        open           away (RPID has no "extended away")
//	dnd                       open           busy
//	type='unavailable'        closed         -
//
// Reading PIDF, the RPID activities map back as ActivityShow says, and a
// document is available when any tuple is open. <status/> text goes to
// <note/> and back.
var PresenceMapping = []ShowMapping{
	{"", "open", ""},
	{"chat", "open", ""},
	{"away", "open", "away"},
	{"xa", "open", "away"},
	{"dnd", "open", "busy"},
}

// ActivityShow maps RFC 4480 §3.2 activities to XMPP <show/> when reading
// PIDF. Activities not listed leave the user plainly available.
var ActivityShow = map[string]string{
	"away":              "away",
	"appointment":       "dnd",
	"busy":              "dnd",
	"meeting":           "dnd",
	"on-the-phone":      "dnd",
	"performance":       "dnd",
	"presentation":      "dnd",
	"steering":          "dnd",
	"worship":           "dnd",
	"breakfast":         "away",
	"dinner":            "away",
	"lunch":             "away",
	"meal":              "away",
	"shopping":          "away",
	"in-transit":        "away",
	"holiday":           "xa",
	"vacation":          "xa",
	"travel":            "xa",
	"sleeping":          "xa",
	"permanent-absence": "xa",
}

// PIDF is an RFC 3863 §4 document with the RFC 4479 person element carrying
// RFC 4480 activities, for decoding.
type PIDF struct {
	XMLName xml.Name     `xml:"urn:ietf:params:xml:ns:pidf presence"`
	Entity  string       `xml:"entity,attr"`
	Tuples  []PIDFTuple  `xml:"urn:ietf:params:xml:ns:pidf tuple"`
	Persons []PIDFPerson `xml:"urn:ietf:params:xml:ns:pidf:data-model person"`
	Notes   []PIDFNote   `xml:"urn:ietf:params:xml:ns:pidf note"`
}

// PIDFTuple is RFC 3863 §4.1.2.
type PIDFTuple struct {
	ID    string     `xml:"id,attr"`
	Basic string     `xml:"urn:ietf:params:xml:ns:pidf status>basic"`
	Notes []PIDFNote `xml:"urn:ietf:params:xml:ns:pidf note"`
}

// PIDFPerson is RFC 4479 §3.1 with RFC 4480 activities.
type PIDFPerson struct {
	ID         string     `xml:"id,attr"`
	Activities *RPIDList  `xml:"urn:ietf:params:xml:ns:pidf:rpid activities"`
	Notes      []PIDFNote `xml:"urn:ietf:params:xml:ns:pidf:data-model note"`
}

// RPIDList is RFC 4480 §3.2 <activities>: empty elements named for the
// activity.
type RPIDList struct {
	Items []struct {
		XMLName xml.Name
	} `xml:",any"`
}

// PIDFNote is a <note/> with its language.
type PIDFNote struct {
	Lang string `xml:"http://www.w3.org/XML/1998/namespace lang,attr,omitempty"`
	Text string `xml:",chardata"`
}

// PresenceFromPIDF reads a NOTIFY or PUBLISH body (RFC 3863 + RFC 4480) into
// a Presence without From/To, which come from the subscription dialog.
// The body is parsed with a size bound and without DTDs or entities.
func PresenceFromPIDF(body []byte) (Presence, error) {
	var doc PIDF
	if err := decodeXMLBounded(body, MaxPIDF, &doc); err != nil {
		return Presence{}, fmt.Errorf("translate: PIDF (RFC 3863): %w: %w", ErrBadPIDF, err)
	}
	p := Presence{Type: stanza.UnavailablePresence}
	var notes []PIDFNote
	for _, t := range doc.Tuples {
		switch strings.TrimSpace(t.Basic) {
		case "open":
			p.Type = stanza.AvailablePresence
		case "closed":
		default:
			return Presence{}, &BodyError{Found: fmt.Sprintf("tuple %q with <basic>%s</basic>", t.ID, t.Basic), Expected: "open or closed (RFC 3863 §4.1.4)", Fix: "fix the presence document", Err: ErrBadPIDF}
		}
		notes = append(notes, t.Notes...)
	}
	for _, per := range doc.Persons {
		p.Show = showFromActivities(per.Activities, p.Show)
		// RFC 4479: the person note describes the user; prefer it.
		notes = append(append([]PIDFNote(nil), per.Notes...), notes...)
	}
	notes = append(notes, doc.Notes...)
	if len(notes) > 0 {
		p.Status = strings.TrimSpace(notes[0].Text)
		p.Lang = notes[0].Lang
	}
	if p.Type == stanza.UnavailablePresence {
		p.Show = ""
	}
	return p, nil
}

// showFromActivities picks the most restrictive show among the activities
// (dnd over xa over away), keeping prev when none maps.
func showFromActivities(l *RPIDList, prev string) string {
	if l == nil {
		return prev
	}
	for _, it := range l.Items {
		if it.XMLName.Space != NSRPID {
			continue
		}
		if s, ok := ActivityShow[it.XMLName.Local]; ok && showRank(s) > showRank(prev) {
			prev = s
		}
	}
	return prev
}

// showRank orders <show/> values from least to most restrictive.
func showRank(show string) int {
	switch show {
	case "away":
		return 1
	case "xa":
		return 2
	case "dnd":
		return 3
	}
	return 0
}

// PIDFFromPresence writes the PIDF document for an XMPP user's presence
// broadcast (RFC 7248 §5, notifications from XMPP to SIP). The entity is the user's SIP URI
// (RFC 3863 §4.1.1 allows any URI; SIP UAs expect sip:). Only available and
// unavailable presences have a PIDF form.
func (m *Mapper) PIDFFromPresence(p *Presence) ([]byte, error) {
	entity, err := m.URIFromJID(p.From.Bare(), SideXMPP)
	if err != nil {
		return nil, err
	}
	basic, activity := "open", ""
	switch p.Type {
	case stanza.AvailablePresence:
		found := false
		for _, r := range PresenceMapping {
			if r.Show == p.Show {
				basic, activity, found = r.Basic, r.Activity, true
			}
		}
		if !found {
			return nil, &BodyError{Found: fmt.Sprintf("<show>%s</show>", p.Show), Expected: "away, chat, dnd or xa (RFC 6121 §4.7.2.1)", Fix: "fix the sender's presence", Err: ErrBadBody}
		}
	case stanza.UnavailablePresence:
		basic = "closed"
	default:
		return nil, fmt.Errorf("translate: presence type %q is a subscription action, not a status; see SubscriptionMapping: %w", p.Type, ErrUnsupportedType)
	}
	if err := checkXMLChars(p.Status); err != nil {
		return nil, err
	}
	return appendPIDF(make([]byte, 0, 512), entity.String(), basic, activity, p.Status, p.Lang), nil
}

func appendPIDF(dst []byte, entity, basic, activity, note, lang string) []byte {
	dst = append(dst, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<presence xmlns="`+NSPIDF+`" xmlns:dm="`+NSPIDFDataModel+`" xmlns:rpid="`+NSRPID+`" entity="`...)
	dst = appendEscaped(dst, entity, true)
	dst = append(dst, "\">\n<tuple id=\"xgw\"><status><basic>"...)
	dst = append(dst, basic...)
	dst = append(dst, "</basic></status>"...)
	noteElem := func(dst []byte, name string) []byte {
		if note == "" {
			return dst
		}
		dst = append(dst, '<')
		dst = append(dst, name...)
		if isLangTag(lang) {
			dst = append(dst, ` xml:lang="`...)
			dst = append(dst, lang...)
			dst = append(dst, '"')
		}
		dst = append(dst, '>')
		dst = appendEscaped(dst, note, false)
		dst = append(dst, "</"...)
		dst = append(dst, name...)
		return append(dst, '>')
	}
	dst = noteElem(dst, "note")
	dst = append(dst, "</tuple>\n"...)
	if activity != "" || note != "" {
		dst = append(dst, `<dm:person id="p">`...)
		if activity != "" {
			dst = append(dst, "<rpid:activities><rpid:"...)
			dst = append(dst, activity...)
			dst = append(dst, "/></rpid:activities>"...)
		}
		dst = noteElem(dst, "dm:note")
		dst = append(dst, "</dm:person>\n"...)
	}
	return append(dst, "</presence>\n"...)
}

// AppendXML appends the presence stanza as jabber:server XML.
func (p *Presence) AppendXML(dst []byte) []byte {
	dst = append(dst, `<presence xmlns="`+NSServer+`"`...)
	dst = appendAttr(dst, "from", p.From.String())
	dst = appendAttr(dst, "to", p.To.String())
	if p.Type != "" {
		dst = appendAttr(dst, "type", string(p.Type))
	}
	if p.ID != "" {
		dst = appendAttr(dst, "id", p.ID)
	}
	if p.Lang != "" {
		dst = appendAttr(dst, "xml:lang", p.Lang)
	}
	if p.Show == "" && p.Status == "" {
		return append(dst, "/>"...)
	}
	dst = append(dst, '>')
	dst = p.AppendInner(dst)
	return append(dst, "</presence>"...)
}

// AppendInner appends the presence payload (<show/>, <status/>) without the
// <presence/> element: the Inner of gateway/xmpp's Stanza.
func (p *Presence) AppendInner(dst []byte) []byte {
	if p.Show != "" {
		dst = append(dst, "<show>"...)
		dst = append(dst, p.Show...)
		dst = append(dst, "</show>"...)
	}
	if p.Status != "" {
		dst = append(dst, "<status>"...)
		dst = appendEscaped(dst, p.Status, false)
		dst = append(dst, "</status>"...)
	}
	return dst
}

// PresenceFromStanza reads the payload of a presence whose start element
// was already consumed: <show/> and the <status/> in the stanza's language
// (or the first one). Other payloads (caps, vCard hashes…) are skipped.
func PresenceFromStanza(s stanza.Presence, r xml.TokenReader) (Presence, error) {
	p := Presence{From: s.From, To: s.To, ID: s.ID, Type: s.Type, Lang: s.Lang}
	statusMatch := false
	for {
		tok, err := r.Token()
		if err == io.EOF {
			return p, nil
		}
		if err != nil {
			return Presence{}, fmt.Errorf("translate: reading presence %q: %w", s.ID, err)
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return p, nil
		case xml.StartElement:
			ours := t.Name.Space == NSServer || t.Name.Space == "jabber:client" || t.Name.Space == ""
			if !ours || (t.Name.Local != "show" && t.Name.Local != "status") {
				if err := xmlstream.Skip(r); err != nil {
					return Presence{}, err
				}
				continue
			}
			text, err := readText(r)
			if err != nil {
				return Presence{}, fmt.Errorf("translate: <%s/> of presence %q: %w", t.Name.Local, s.ID, err)
			}
			if t.Name.Local == "show" {
				p.Show = strings.TrimSpace(text)
				continue
			}
			lang := attrLang(t)
			match := lang == "" || lang == s.Lang
			if p.Status == "" || match && !statusMatch {
				p.Status, statusMatch = text, match
			}
		}
	}
}

// Subscription-State values (RFC 6665 §8.2.3) and reasons (RFC 6665 §4.1.3).
const (
	SubActive     = "active"
	SubPending    = "pending"
	SubTerminated = "terminated"
)

// SubscriptionState is a parsed Subscription-State header.
type SubscriptionState struct {
	State      string
	Reason     string // deactivated, probation, rejected, timeout, giveup, noresource, invariant
	Expires    int    // -1 when absent
	RetryAfter int    // -1 when absent
}

// ParseSubscriptionState parses a Subscription-State header value
// (RFC 6665 §8.2.3), e.g. "terminated;reason=rejected".
func ParseSubscriptionState(v string) (SubscriptionState, error) {
	s := SubscriptionState{Expires: -1, RetryAfter: -1}
	state, params, _ := strings.Cut(v, ";")
	s.State = strings.ToLower(strings.TrimSpace(state))
	switch s.State {
	case SubActive, SubPending, SubTerminated:
	default:
		return s, &BodyError{Found: fmt.Sprintf("Subscription-State %q", v), Expected: "active, pending or terminated (RFC 6665 §8.2.3)", Fix: "fix the notifier", Err: ErrBadBody}
	}
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, val, _ := strings.Cut(p, "=")
		k, val = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(val)
		switch k {
		case "reason":
			s.Reason = strings.ToLower(val)
		case "expires", "retry-after":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return s, &BodyError{Found: fmt.Sprintf("%s=%q in Subscription-State", k, val), Expected: "a number of seconds", Fix: "fix the notifier", Err: ErrBadBody}
			}
			if k == "expires" {
				s.Expires = n
			} else {
				s.RetryAfter = n
			}
		}
	}
	return s, nil
}

// String formats the header value.
func (s SubscriptionState) String() string {
	var b strings.Builder
	b.WriteString(s.State)
	if s.Reason != "" {
		b.WriteString(";reason=")
		b.WriteString(s.Reason)
	}
	if s.Expires >= 0 {
		b.WriteString(";expires=")
		b.WriteString(strconv.Itoa(s.Expires))
	}
	if s.RetryAfter >= 0 {
		b.WriteString(";retry-after=")
		b.WriteString(strconv.Itoa(s.RetryAfter))
	}
	return b.String()
}

// SubscriptionMapping is RFC 7248 §4 (XMPP to SIP) and §5 (SIP to XMPP) as
// data, for the README:
//
//	XMPP presence type    SIP
//	subscribe             SUBSCRIBE Event: presence, Expires: DefaultExpires (new dialog)
//	unsubscribe           SUBSCRIBE Expires: 0 in the existing dialog
//	probe                 SUBSCRIBE Expires: 0 outside a dialog (a fetch, RFC 6665 §4.4.3)
//	subscribed            NOTIFY Subscription-State: active (approves a pending SUBSCRIBE)
//	unsubscribed          NOTIFY Subscription-State: terminated;reason=rejected
//	available             NOTIFY, PIDF <basic>open</basic> (+ RPID, see PresenceMapping)
//	unavailable           NOTIFY, PIDF <basic>closed</basic>
//
//	SIP                                             XMPP
//	SUBSCRIBE, new dialog, Expires > 0              subscribe
//	SUBSCRIBE, existing dialog, Expires > 0         (refresh: none; answer with a NOTIFY of the last state)
//	SUBSCRIBE, existing dialog, Expires: 0          unsubscribe
//	SUBSCRIBE, no dialog, Expires: 0                probe
//	NOTIFY active                                   subscribed (first time), then the PIDF as presence
//	NOTIFY pending                                  (none: XMPP has no pending answer; wait)
//	NOTIFY terminated;reason=rejected|noresource|   unsubscribed
//	       invariant, or no reason
//	NOTIFY terminated;reason=deactivated|probation| (none: re-SUBSCRIBE, after retry-after if given,
//	       timeout|giveup                            RFC 6665 §4.1.3)
var SubscriptionMapping = []struct{ XMPP, SIP string }{
	{"subscribe", "SUBSCRIBE Expires>0, new dialog"},
	{"unsubscribe", "SUBSCRIBE Expires: 0, in dialog"},
	{"probe", "SUBSCRIBE Expires: 0, out of dialog (fetch)"},
	{"subscribed", "NOTIFY Subscription-State: active"},
	{"unsubscribed", "NOTIFY Subscription-State: terminated;reason=rejected"},
	{"available", "NOTIFY with PIDF basic=open"},
	{"unavailable", "NOTIFY with PIDF basic=closed"},
}

// DefaultExpires is the SUBSCRIBE duration the gateway asks for (RFC 6665
// §4.1.2.1 leaves it to the event package; RFC 3856 §6.4 suggests 3600 s).
const DefaultExpires = 3600

// SIPAction says what to send on the SIP side for an XMPP presence.
type SIPAction struct {
	Method   sip.RequestMethod // SUBSCRIBE or NOTIFY
	InDialog bool              // send within the existing subscription dialog
	Expires  int               // SUBSCRIBE only
	State    SubscriptionState // NOTIFY only
	PIDF     bool              // NOTIFY carries a PIDF body (PIDFFromPresence)
}

// SIPActionFor maps an XMPP presence type to its SIP action (RFC 7248 §4).
func SIPActionFor(t stanza.PresenceType) (SIPAction, error) {
	switch t {
	case stanza.SubscribePresence:
		return SIPAction{Method: sip.SUBSCRIBE, Expires: DefaultExpires}, nil
	case stanza.UnsubscribePresence:
		return SIPAction{Method: sip.SUBSCRIBE, InDialog: true, Expires: 0}, nil
	case stanza.ProbePresence:
		return SIPAction{Method: sip.SUBSCRIBE, Expires: 0}, nil
	case stanza.SubscribedPresence:
		return SIPAction{Method: sip.NOTIFY, InDialog: true, State: SubscriptionState{State: SubActive, Expires: -1, RetryAfter: -1}}, nil
	case stanza.UnsubscribedPresence:
		return SIPAction{Method: sip.NOTIFY, InDialog: true, State: SubscriptionState{State: SubTerminated, Reason: "rejected", Expires: -1, RetryAfter: -1}}, nil
	case stanza.AvailablePresence, stanza.UnavailablePresence:
		return SIPAction{Method: sip.NOTIFY, InDialog: true, State: SubscriptionState{State: SubActive, Expires: -1, RetryAfter: -1}, PIDF: true}, nil
	}
	return SIPAction{}, fmt.Errorf("translate: presence type %q has no SIP form: %w", t, ErrUnsupportedType)
}

// PresenceTypeForSubscribe maps a received SUBSCRIBE (RFC 7248 §5). ok is
// false for a refresh, which has no XMPP counterpart.
func PresenceTypeForSubscribe(expires int, inDialog bool) (t stanza.PresenceType, ok bool) {
	switch {
	case expires > 0 && !inDialog:
		return stanza.SubscribePresence, true
	case expires > 0:
		return "", false
	case inDialog:
		return stanza.UnsubscribePresence, true
	default:
		return stanza.ProbePresence, true
	}
}

// PresenceTypeForNotify maps the Subscription-State of a received NOTIFY
// (RFC 7248 §5). ok is false when XMPP is told nothing; resubscribe is true
// when RFC 6665 §4.1.3 says the subscriber may try again.
func PresenceTypeForNotify(s SubscriptionState) (t stanza.PresenceType, ok, resubscribe bool) {
	switch s.State {
	case SubActive:
		return stanza.SubscribedPresence, true, false
	case SubPending:
		return "", false, false
	}
	switch s.Reason {
	case "deactivated", "probation", "timeout", "giveup":
		return "", false, true
	}
	return stanza.UnsubscribedPresence, true, false
}
