package translate

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

func TestAppendErrorReply(t *testing.T) {
	orig := Message{
		From:   jid.MustParse("juliet@xmpp.example/balcony"),
		To:     jid.MustParse("alice@litware.example"),
		ID:     "m-9",
		Thread: "t<1>",
		Type:   stanza.ChatMessage,
		Body:   "not echoed",
	}
	e := MapError(fmt.Errorf("%w: dial tcp 192.0.2.1:5061: connection refused", ErrEdgeUnreachable))
	out := string(orig.AppendErrorReply(nil, e))
	want := `<message xmlns="jabber:server" from="alice@litware.example" to="juliet@xmpp.example/balcony" type="error" id="m-9"><thread>t&lt;1&gt;</thread>` +
		`<error type="wait"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>` +
		`<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas" xml:lang="en">SIP Edge unreachable: dial tcp 192.0.2.1:5061: connection refused</text></error></message>`
	if out != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
	// It must parse as a stanza error mellium understands.
	back, err := DecodeMessage([]byte(out))
	if err != nil || back.Type != stanza.ErrorMessage || back.Body != "" {
		t.Fatalf("DecodeMessage = %+v, %v", back, err)
	}
}

func TestWarning(t *testing.T) {
	tests := []struct{ text, want string }{
		{"XMPP partner unreachable", `399 xgw.litware.example "XMPP partner unreachable"`},
		{`quote " and \ back`, `399 xgw.litware.example "quote \" and \\ back"`},
		{"line\r\nX-Injected: 1", `399 xgw.litware.example "line  X-Injected: 1"`},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			if got := (Mapped{Text: tt.text}).Warning("xgw.litware.example"); got != tt.want {
				t.Errorf("Warning = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestMapErrorOrder(t *testing.T) {
	// A PIDF that is too large is 413, not the generic 400 of ErrBadPIDF.
	_, err := PresenceFromPIDF([]byte(strings.Repeat("x", MaxPIDF+1)))
	if got := MapError(err); got.Status != 413 || got.Condition != stanza.PolicyViolation {
		t.Errorf("oversized PIDF -> %d %s, want 413 policy-violation", got.Status, got.Condition)
	}
	if got := MapError(nil); got != (Mapped{}) {
		t.Errorf("MapError(nil) = %+v", got)
	}
	if !errors.Is(fmt.Errorf("wrapped: %w", ErrPartnerTimeout), ErrPartnerTimeout) {
		t.Fatal("sanity")
	}
}
