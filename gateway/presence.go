package gateway

import (
	"context"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/xgw-gateway/xgw/gateway/sip"
	"github.com/xgw-gateway/xgw/gateway/xmpp"
)

// Presence (RFC 7248) is not relayed yet. Until it is, every presence
// stanza and every SUBSCRIBE is answered honestly as unsupported and
// logged, never dropped: XMPP senders get service-unavailable (their
// server shows the contact as unavailable rather than pending forever),
// SIP subscribers get 501.

// presenceFromXMPP gets every presence stanza addressed to one of our users.
// Returning an *xmpp.Error makes the xmpp layer bounce it (it never
// bounces type='error').
func (s *Server) presenceFromXMPP(_ context.Context, st *xmpp.Stanza) error {
	typ := st.Type
	if typ == "" {
		typ = "available"
	}
	s.log.Info("xmpp presence refused: presence is not relayed yet",
		"from", st.From.String(), "to", st.To.String(), "type", typ)
	if st.Type == "error" {
		return nil
	}
	return &xmpp.Error{Type: xmpp.ErrorTypeCancel, Condition: xmpp.CondServiceUnavailable,
		Text: "this gateway does not relay presence yet"}
}

// subscribeFromSIP answers a SUBSCRIBE from the Edge.
func (s *Server) subscribeFromSIP(_ context.Context, change sip.Change, sub sip.Subscription) sip.Answer {
	s.log.Info("sip SUBSCRIBE refused: presence is not relayed yet", "change", change.String(),
		"from", sub.RemoteURI, "to", sub.LocalURI, "event", sub.Event, "status", 501)
	return sip.Answer{Status: 501}
}

// notifyFromSIP answers a NOTIFY in a subscription we created; we create
// none yet, so this only happens with a stored dialog of a later version.
func (s *Server) notifyFromSIP(_ context.Context, sub sip.Subscription, req *gosip.Request) int {
	s.log.Info("sip NOTIFY refused: presence is not relayed yet", "from", sub.RemoteURI, "to", sub.LocalURI,
		"call-id", callID(req), "status", 501)
	return 501
}

// subscriptionEnded logs a subscription dialog that ended on its own.
func (s *Server) subscriptionEnded(_ context.Context, sub sip.Subscription, reason string) {
	s.log.Info("sip subscription ended", "from", sub.RemoteURI, "to", sub.LocalURI, "reason", reason)
}
