package gateway

import (
	"context"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/xgw-gateway/xgw/gateway/sip"
	"github.com/xgw-gateway/xgw/gateway/xmpp"
)

// The two sides call the gateway through these adapters, so that the
// Handler methods stay off Server's exported API. Each method only routes:
// messages (and typing, which travels in messages) go to message.go,
// presence and SUBSCRIBE/NOTIFY to presence.go.

// xmppSide is the xmpp.Handler: stanzas from federated XMPP users to
// user@<one of sip.domains>.
type xmppSide struct{ s *Server }

var _ xmpp.Handler = xmppSide{}

func (x xmppSide) HandleInbound(ctx context.Context, st *xmpp.Stanza) error {
	x.s.met.Stanza("in", st.Name)
	switch st.Name {
	case "message":
		if st.Type == "error" {
			// A bounce of a message from SIP: from a remote server, or
			// from our own pool when the partner was unreachable.
			x.s.messageBounced(ctx, st)
			return nil
		}
		return x.s.queueToSIP(ctx, st)
	case "presence":
		return x.s.presenceFromXMPP(ctx, st)
	default: // iq result or error: we send no IQ requests yet
		x.s.log.Info("xmpp iq ignored: no SIP request waits for it", "from", st.From.String(), "to", st.To.String(), "type", st.Type, "id", st.ID)
		return nil
	}
}

// sipSide is the sip.Handler: requests from the Edge.
type sipSide struct{ s *Server }

var _ sip.Handler = sipSide{}

func (x sipSide) HandleMessage(ctx context.Context, req *gosip.Request) (int, string) {
	status, reason := x.s.messageFromSIP(ctx, req)
	x.s.met.SIPRequest("in", "MESSAGE", status)
	return status, reason
}

func (x sipSide) HandleSubscribe(ctx context.Context, change sip.Change, sub sip.Subscription) sip.Answer {
	a := x.s.subscribeFromSIP(ctx, change, sub)
	x.s.met.SIPRequest("in", "SUBSCRIBE", a.Status)
	return a
}

func (x sipSide) HandleNotify(ctx context.Context, sub sip.Subscription, req *gosip.Request) int {
	status := x.s.notifyFromSIP(ctx, sub, req)
	x.s.met.SIPRequest("in", "NOTIFY", status)
	return status
}

func (x sipSide) HandleEnded(ctx context.Context, sub sip.Subscription, reason string) {
	x.s.subscriptionEnded(ctx, sub, reason)
}
