package xmpp

import (
	"bytes"
	"encoding/xml"
	"fmt"
)

// Stream error conditions (RFC 6120 §4.9.3) that xgw sends or recognises.
const (
	SECBadFormat             = "bad-format"
	SECConflict              = "conflict"
	SECConnectionTimeout     = "connection-timeout"
	SECHostUnknown           = "host-unknown"
	SECImproperAddressing    = "improper-addressing"
	SECInternalServerError   = "internal-server-error"
	SECInvalidFrom           = "invalid-from"
	SECInvalidNamespace      = "invalid-namespace"
	SECNotAuthorized         = "not-authorized"
	SECNotWellFormed         = "not-well-formed"
	SECPolicyViolation       = "policy-violation"
	SECRemoteConnFailed      = "remote-connection-failed"
	SECResourceConstraint    = "resource-constraint"
	SECRestrictedXML         = "restricted-xml"
	SECSystemShutdown        = "system-shutdown"
	SECUndefinedCondition    = "undefined-condition"
	SECUnsupportedEncoding   = "unsupported-encoding"
	SECUnsupportedFeature    = "unsupported-feature"
	SECUnsupportedStanzaType = "unsupported-stanza-type"
	SECUnsupportedVersion    = "unsupported-version"
)

// StreamError is a stream-level error (RFC 6120 §4.9): it closes the stream.
// Errors returned for a stream that failed carry one when the cause was a
// stream error, sent by us or by the peer (see errors.As).
type StreamError struct {
	Condition string
	Text      string
	// Remote is true when the peer sent the error.
	Remote bool
}

func (e *StreamError) Error() string {
	who := "sent"
	if e.Remote {
		who = "received"
	}
	if e.Text != "" {
		return fmt.Sprintf("xmpp: stream error %s %s: %s", who, e.Condition, e.Text)
	}
	return fmt.Sprintf("xmpp: stream error %s %s", who, e.Condition)
}

// Is matches stream errors by condition, so errors.Is(err,
// &StreamError{Condition: SECHostUnknown}) works.
func (e *StreamError) Is(target error) bool {
	t, ok := target.(*StreamError)
	return ok && t.Condition == e.Condition
}

func streamErr(cond, format string, args ...any) *StreamError {
	return &StreamError{Condition: cond, Text: fmt.Sprintf(format, args...)}
}

func (e *StreamError) bytes() []byte {
	var b bytes.Buffer
	b.WriteString(`<stream:error><` + e.Condition + ` xmlns='` + NSStreamErrors + `'/>`)
	if e.Text != "" {
		b.WriteString(`<text xmlns='` + NSStreamErrors + `' xml:lang='en'>`)
		xml.EscapeText(&b, []byte(e.Text))
		b.WriteString(`</text>`)
	}
	b.WriteString(`</stream:error>`)
	return b.Bytes()
}

// parseStreamError reads a <stream:error/> the peer sent.
func parseStreamError(el *node) *StreamError {
	se := &StreamError{Remote: true, Condition: SECUndefinedCondition}
	for _, c := range el.Children {
		if c.Name.Space != NSStreamErrors {
			continue
		}
		if c.Name.Local == "text" {
			se.Text = c.Text
		} else {
			se.Condition = c.Name.Local
		}
	}
	return se
}
