package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xgw-gateway/xgw/gateway/sip"
	"github.com/xgw-gateway/xgw/gateway/translate"
	"github.com/xgw-gateway/xgw/gateway/xmpp"
)

// What a SIP sender is answered when the s2s pool refuses a stanza at once.
func TestStatusForSendError(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
	}{
		{"partner not allowed", &xmpp.Error{Type: xmpp.ErrorTypeCancel, Condition: xmpp.CondForbidden}, 403},
		{"partner failed recently", &xmpp.Error{Type: xmpp.ErrorTypeCancel, Condition: xmpp.CondRemoteServerNotFound}, 404},
		{"partner timed out recently", &xmpp.Error{Type: xmpp.ErrorTypeWait, Condition: xmpp.CondRemoteServerTimeout}, 408},
		{"queue full", &xmpp.Error{Type: xmpp.ErrorTypeWait, Condition: xmpp.CondResourceConstraint}, 500},
		{"shutting down", &xmpp.Error{Type: xmpp.ErrorTypeWait, Condition: xmpp.CondServiceUnavailable}, 503},
		{"handler deadline", fmt.Errorf("write: %w", context.DeadlineExceeded), 408},
		{"anything else", errors.New("xmpp: Send: stanza has no 'to'"), 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, reason := statusForSendError(tt.err); got != tt.wantStatus || reason == "" {
				t.Errorf("statusForSendError = %d %q, want %d", got, reason, tt.wantStatus)
			}
		})
	}
}

// What an XMPP sender gets when the Edge gives no final response, and that
// the text sent to a remote domain names no internal address.
func TestRefuseXMPPEdgeFailures(t *testing.T) {
	s := &Server{log: discard()}
	st := &xmpp.Stanza{Name: "message", From: jid.MustParse("bob@xmpp.test/r"), To: jid.MustParse("alice@litware.test")}
	tests := []struct {
		name     string
		err      error
		wantCond string
		wantType string
		wantText string
	}{
		{"timeout", fmt.Errorf("sip: MESSAGE via 10.1.2.3:5061: %w", sip.ErrTimeout), xmpp.CondRemoteServerTimeout, xmpp.ErrorTypeWait, translate.ErrEdgeTimeout.Error()},
		{"transport", fmt.Errorf("sip: MESSAGE via 10.1.2.3:5061: %w: dial tcp: refused", sip.ErrTransport), xmpp.CondServiceUnavailable, xmpp.ErrorTypeWait, translate.ErrEdgeUnreachable.Error()},
		{"endpoint closed", fmt.Errorf("sip: MESSAGE: %w", sip.ErrClosed), xmpp.CondServiceUnavailable, xmpp.ErrorTypeWait, translate.ErrEdgeUnreachable.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e *xmpp.Error
			if !errors.As(s.refuseXMPP(st, edgeFailure(tt.err)), &e) {
				t.Fatal("not an *xmpp.Error")
			}
			if e.Condition != tt.wantCond || e.Type != tt.wantType || e.Text != tt.wantText {
				t.Errorf("got %s/%s %q, want %s/%s %q", e.Condition, e.Type, e.Text, tt.wantCond, tt.wantType, tt.wantText)
			}
		})
	}
	t.Run("translation failure keeps its explanation", func(t *testing.T) {
		var e *xmpp.Error
		err := fmt.Errorf("translate: %w", translate.ErrNoContent)
		if !errors.As(s.refuseXMPP(st, err), &e) || e.Condition != string(stanza.FeatureNotImplemented) || e.Text != err.Error() {
			t.Errorf("got %+v", e)
		}
	})
}

// Bounces as the xmpp pool and as Prosody write them.
func TestBounceCondition(t *testing.T) {
	tests := []struct {
		name, xml          string
		wantCond, wantText string
		wantBody           string
	}{
		{"our pool (original echoed)",
			`<message from='bob@gone.test' to='alice@litware.test' type='error' id='x'><body>are you there?</body><thread>c1</thread>` +
				`<error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>` +
				`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no server for gone.test</text></error></message>`,
			"remote-server-not-found", "no server for gone.test", "are you there?"},
		{"Prosody (error only)",
			`<message from='nobody@xmpp.test' to='alice@litware.test' type='error' id='x'>` +
				`<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`,
			"service-unavailable", "", ""},
		{"no condition", `<message from='a@b.test' to='alice@litware.test' type='error'><error type='cancel'/></message>`,
			xmpp.CondUndefined, "", ""},
		{"foreign elements only", `<message from='a@b.test' to='alice@litware.test' type='error'><error type='modify'><x xmlns='urn:example'/></error></message>`,
			xmpp.CondUndefined, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := xmpp.ParseStanza([]byte(tt.xml))
			if err != nil {
				t.Fatal(err)
			}
			var b bounce
			if err := st.Decode(&b); err != nil {
				t.Fatal(err)
			}
			cond, text := b.condition()
			if cond != tt.wantCond || text != tt.wantText || b.Body != tt.wantBody {
				t.Errorf("got %q %q body %q, want %q %q body %q", cond, text, b.Body, tt.wantCond, tt.wantText, tt.wantBody)
			}
		})
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
