package translate

import (
	"context"
	"errors"
	"strings"

	"mellium.im/xmpp/stanza"
)

// StatusMapping is one row of the SIP -> XMPP table: a SIP final response
// received for a request that came from XMPP becomes this stanza error.
type StatusMapping struct {
	Status    int
	Condition stanza.Condition
	Type      stanza.ErrorType
}

// ConditionMapping is one row of the XMPP -> SIP table: a stanza error
// received for a message that came from SIP becomes this final response.
type ConditionMapping struct {
	Condition stanza.Condition
	Status    int
	Reason    string
}

// SIPToXMPPErrors is RFC 7247 §6.2 (SIP response codes to XMPP stanza
// errors). Error types follow the recommendations of RFC 6120 §8.3.3.
// Codes not listed fall back by class in ConditionForStatus.
var SIPToXMPPErrors = []StatusMapping{
	{300, stanza.Redirect, stanza.Modify},
	{301, stanza.Redirect, stanza.Modify},
	{302, stanza.Redirect, stanza.Modify},
	{305, stanza.Redirect, stanza.Modify},
	{380, stanza.Redirect, stanza.Modify},
	{400, stanza.BadRequest, stanza.Modify},
	{401, stanza.NotAuthorized, stanza.Auth},
	{402, stanza.BadRequest, stanza.Auth},
	{403, stanza.Forbidden, stanza.Auth},
	{404, stanza.ItemNotFound, stanza.Cancel},
	{405, stanza.FeatureNotImplemented, stanza.Cancel},
	{406, stanza.NotAcceptable, stanza.Modify},
	{407, stanza.NotAuthorized, stanza.Auth},
	{408, stanza.RemoteServerTimeout, stanza.Wait},
	{410, stanza.Gone, stanza.Cancel},
	{413, stanza.PolicyViolation, stanza.Modify},
	{414, stanza.JIDMalformed, stanza.Modify},
	{415, stanza.BadRequest, stanza.Modify},
	{416, stanza.JIDMalformed, stanza.Modify},
	{420, stanza.FeatureNotImplemented, stanza.Cancel},
	{421, stanza.BadRequest, stanza.Modify},
	{423, stanza.BadRequest, stanza.Modify},
	{430, stanza.RecipientUnavailable, stanza.Wait},
	{439, stanza.FeatureNotImplemented, stanza.Cancel},
	{440, stanza.PolicyViolation, stanza.Modify},
	{470, stanza.Forbidden, stanza.Auth},
	{480, stanza.RecipientUnavailable, stanza.Wait},
	{481, stanza.ItemNotFound, stanza.Cancel},
	{482, stanza.NotAcceptable, stanza.Cancel},
	{483, stanza.NotAcceptable, stanza.Cancel},
	{484, stanza.ItemNotFound, stanza.Cancel},
	{485, stanza.ItemNotFound, stanza.Cancel},
	{486, stanza.RecipientUnavailable, stanza.Wait},
	{487, stanza.ServiceUnavailable, stanza.Cancel},
	{488, stanza.NotAcceptable, stanza.Modify},
	{489, stanza.PolicyViolation, stanza.Modify},
	{491, stanza.UnexpectedRequest, stanza.Wait},
	{493, stanza.BadRequest, stanza.Modify},
	{494, stanza.NotAuthorized, stanza.Auth},
	{500, stanza.InternalServerError, stanza.Cancel},
	{501, stanza.FeatureNotImplemented, stanza.Cancel},
	{502, stanza.RemoteServerNotFound, stanza.Cancel},
	{503, stanza.ServiceUnavailable, stanza.Wait},
	{504, stanza.RemoteServerTimeout, stanza.Wait},
	{505, stanza.NotAcceptable, stanza.Cancel},
	{513, stanza.PolicyViolation, stanza.Modify},
	{580, stanza.NotAcceptable, stanza.Cancel},
	{600, stanza.ServiceUnavailable, stanza.Cancel},
	{603, stanza.ServiceUnavailable, stanza.Cancel},
	{604, stanza.ItemNotFound, stanza.Cancel},
	{606, stanza.NotAcceptable, stanza.Cancel},
}

// XMPPToSIPErrors is RFC 7247 §6.1 (XMPP stanza error conditions to SIP
// response codes), for every condition of RFC 6120 §8.3.3. Where the RFC
// offers a 6xx alternative (forbidden 403 or 603, item-not-found 404 or 604…)
// the 4xx code is used: the gateway cannot know that a refusal holds for
// every one of the user's devices.
var XMPPToSIPErrors = []ConditionMapping{
	{stanza.BadRequest, 400, "Bad Request"},
	{stanza.Conflict, 400, "Bad Request"},
	{stanza.FeatureNotImplemented, 405, "Method Not Allowed"},
	{stanza.Forbidden, 403, "Forbidden"},
	{stanza.Gone, 410, "Gone"},
	{stanza.InternalServerError, 500, "Server Internal Error"},
	{stanza.ItemNotFound, 404, "Not Found"},
	{stanza.JIDMalformed, 484, "Address Incomplete"},
	{stanza.NotAcceptable, 406, "Not Acceptable"},
	{stanza.NotAllowed, 405, "Method Not Allowed"},
	{stanza.NotAuthorized, 401, "Unauthorized"},
	{stanza.PolicyViolation, 403, "Forbidden"},
	{stanza.RecipientUnavailable, 480, "Temporarily Unavailable"},
	{stanza.Redirect, 302, "Moved Temporarily"},
	{stanza.RegistrationRequired, 407, "Proxy Authentication Required"},
	{stanza.RemoteServerNotFound, 404, "Not Found"},
	{stanza.RemoteServerTimeout, 408, "Request Timeout"},
	{stanza.ResourceConstraint, 500, "Server Internal Error"},
	{stanza.ServiceUnavailable, 503, "Service Unavailable"},
	{stanza.SubscriptionRequired, 400, "Bad Request"},
	{stanza.UndefinedCondition, 400, "Bad Request"},
	{stanza.UnexpectedRequest, 491, "Request Pending"},
}

// ConditionForStatus maps a SIP final failure response to an XMPP stanza
// error (RFC 7247 §6.2). Codes outside the table fall back to their class:
// 3xx redirect, 4xx bad-request, 5xx internal-server-error, 6xx
// service-unavailable (RFC 3261 §8.1.3.2: an unknown code is treated as x00).
func ConditionForStatus(code int) (stanza.Condition, stanza.ErrorType) {
	for _, r := range SIPToXMPPErrors {
		if r.Status == code {
			return r.Condition, r.Type
		}
	}
	if class := code / 100 * 100; class != code && class >= 300 && class <= 600 {
		return ConditionForStatus(class)
	}
	return stanza.UndefinedCondition, stanza.Cancel
}

// StatusForCondition maps an XMPP stanza error condition to a SIP final
// response (RFC 7247 §6.1). An unknown condition is undefined-condition.
func StatusForCondition(c stanza.Condition) (code int, reason string) {
	for _, r := range XMPPToSIPErrors {
		if r.Condition == c {
			return r.Status, r.Reason
		}
	}
	return 400, "Bad Request"
}

// The gateway's own failures. gateway/sip and gateway/xmpp wrap their
// network errors with these (fmt.Errorf("%w: %w", translate.ErrPartnerTimeout, err))
// so that MapError can pick the answer for the sender.
var (
	// ErrEdgeUnreachable: no connection to the SIP Edge (refused, TLS failed,
	// DNS failed). An XMPP sender gets service-unavailable (wait).
	ErrEdgeUnreachable = errors.New("SIP Edge unreachable")
	// ErrEdgeTimeout: the Edge accepted the request but gave no final
	// response in time. An XMPP sender gets remote-server-timeout (wait).
	ErrEdgeTimeout = errors.New("SIP Edge timed out")
	// ErrPartnerUnreachable: no s2s stream to the XMPP partner (DNS, TCP,
	// TLS or dialback failed). A SIP sender gets 503 so that it may retry.
	ErrPartnerUnreachable = errors.New("XMPP partner unreachable")
	// ErrPartnerTimeout: the stream to the partner did not come up in time.
	// A SIP sender gets 408.
	ErrPartnerTimeout = errors.New("XMPP partner timed out")
	// ErrOverloaded: the gateway's queue to the destination is full.
	ErrOverloaded = errors.New("gateway overloaded")
)

// Mapped is the answer to give a sender whose message could not be
// delivered, on each protocol. Text is a human-readable cause for the XMPP
// <text/> element or a SIP Warning header (RFC 3261 §20.43, code 399).
type Mapped struct {
	Status    int
	Reason    string
	Condition stanza.Condition
	Type      stanza.ErrorType
	Text      string
}

// gatewayFailures lists, in match order, how each failure is answered.
var gatewayFailures = []struct {
	err    error
	status int
	reason string
	cond   stanza.Condition
	typ    stanza.ErrorType
}{
	{ErrEdgeUnreachable, 503, "Service Unavailable", stanza.ServiceUnavailable, stanza.Wait},
	{ErrEdgeTimeout, 504, "Server Time-out", stanza.RemoteServerTimeout, stanza.Wait},
	{ErrPartnerUnreachable, 503, "Service Unavailable", stanza.RemoteServerNotFound, stanza.Cancel},
	{ErrPartnerTimeout, 408, "Request Timeout", stanza.RemoteServerTimeout, stanza.Wait},
	{context.DeadlineExceeded, 408, "Request Timeout", stanza.RemoteServerTimeout, stanza.Wait},
	{ErrOverloaded, 503, "Service Unavailable", stanza.ResourceConstraint, stanza.Wait},
	{ErrUnknownDomain, 404, "Not Found", stanza.ItemNotFound, stanza.Cancel},
	{ErrUnmappable, 484, "Address Incomplete", stanza.JIDMalformed, stanza.Modify},
	{ErrUnsupportedMedia, 415, "Unsupported Media Type", stanza.NotAcceptable, stanza.Modify},
	{ErrTooLarge, 413, "Request Entity Too Large", stanza.PolicyViolation, stanza.Modify},
	{ErrBadPIDF, 400, "Bad Request", stanza.BadRequest, stanza.Modify},
	{ErrBadBody, 400, "Bad Request", stanza.NotAcceptable, stanza.Modify},
	{ErrUnsupportedType, 405, "Method Not Allowed", stanza.FeatureNotImplemented, stanza.Cancel},
	{ErrNoContent, 415, "Unsupported Media Type", stanza.FeatureNotImplemented, stanza.Cancel},
}

// MapError picks the SIP response and the XMPP stanza error for an error
// from this package or a gateway failure above. Anything else is an
// internal error (500 / internal-server-error), never silence.
func MapError(err error) Mapped {
	if err == nil {
		return Mapped{}
	}
	for _, f := range gatewayFailures {
		if errors.Is(err, f.err) {
			return Mapped{Status: f.status, Reason: f.reason, Condition: f.cond, Type: f.typ, Text: err.Error()}
		}
	}
	return Mapped{Status: 500, Reason: "Server Internal Error", Condition: stanza.InternalServerError, Type: stanza.Cancel, Text: err.Error()}
}

// NSStanzaErrors is the namespace of stanza error conditions (RFC 6120 §8.3.2).
const NSStanzaErrors = "urn:ietf:params:xml:ns:xmpp-stanzas"

// AppendErrorReply appends the bounce for msg (RFC 6120 §8.3.1): type
// "error", from and to swapped, the same id and thread so the sender can
// match it, and the condition, type and text of e. The original body is not
// echoed.
func (msg *Message) AppendErrorReply(dst []byte, e Mapped) []byte {
	dst = append(dst, `<message xmlns="`+NSServer+`"`...)
	dst = appendAttr(dst, "from", msg.To.String())
	dst = appendAttr(dst, "to", msg.From.String())
	dst = appendAttr(dst, "type", "error")
	if msg.ID != "" {
		dst = appendAttr(dst, "id", msg.ID)
	}
	dst = append(dst, '>')
	if msg.Thread != "" {
		dst = append(dst, "<thread>"...)
		dst = appendEscaped(dst, msg.Thread, false)
		dst = append(dst, "</thread>"...)
	}
	dst = append(dst, "<error"...)
	dst = appendAttr(dst, "type", string(e.Type))
	dst = append(dst, "><"...)
	dst = append(dst, e.Condition...)
	dst = append(dst, ` xmlns="`+NSStanzaErrors+`"/>`...)
	if e.Text != "" {
		dst = append(dst, `<text xmlns="`+NSStanzaErrors+`" xml:lang="en">`...)
		dst = appendEscaped(dst, e.Text, false)
		dst = append(dst, "</text>"...)
	}
	return append(dst, "</error></message>"...)
}

// Warning formats a SIP Warning header value carrying e.Text (RFC 3261
// §20.43, code 399 "miscellaneous warning"); agent is the gateway's host.
func (e Mapped) Warning(agent string) string {
	var b strings.Builder
	b.WriteString("399 ")
	b.WriteString(agent)
	b.WriteString(` "`)
	for _, r := range headerText(e.Text) {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}
