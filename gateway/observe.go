package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/xgw-gateway/xgw/gateway/metrics"
	"github.com/xgw-gateway/xgw/gateway/presenceapi"
	"github.com/xgw-gateway/xgw/gateway/sip"
	"github.com/xgw-gateway/xgw/gateway/xmpp"
)

// What the admin listener sees of the gateway: metrics read at scrape time
// and readiness. Counters are fed where the glue already decides an
// outcome; the two sides' senders are wrapped below so that every stanza
// and SIP request sent, presence.go's included, is counted in one place.

var _ metrics.State = (*Server)(nil)

// xmppServer counts the stanzas the gateway sends.
type xmppServer struct {
	*xmpp.Server
	met *metrics.Metrics
}

func (x xmppServer) Send(ctx context.Context, st *xmpp.Stanza) error {
	err := x.Server.Send(ctx, st)
	if err == nil {
		x.met.Stanza("out", st.Name)
	}
	return err
}

// sipEndpoint counts the SIP requests the gateway sends, by final status.
type sipEndpoint struct {
	*sip.Endpoint
	met *metrics.Metrics
}

func (e sipEndpoint) SendMessage(ctx context.Context, m sip.OutboundMessage) (*gosip.Response, error) {
	res, err := e.Endpoint.SendMessage(ctx, m)
	status := 0
	if res != nil {
		status = res.StatusCode
	}
	e.met.SIPRequest("out", "MESSAGE", status)
	return res, err
}

func (e sipEndpoint) Subscribe(ctx context.Context, r sip.SubscribeRequest) (sip.Subscription, error) {
	sub, err := e.Endpoint.Subscribe(ctx, r)
	e.met.SIPRequest("out", "SUBSCRIBE", statusOf(err))
	return sub, err
}

func (e sipEndpoint) Unsubscribe(ctx context.Context, id sip.DialogID) error {
	err := e.Endpoint.Unsubscribe(ctx, id)
	e.met.SIPRequest("out", "SUBSCRIBE", statusOf(err))
	return err
}

func (e sipEndpoint) Notify(ctx context.Context, id sip.DialogID, n sip.Notification) error {
	err := e.Endpoint.Notify(ctx, id, n)
	e.met.SIPRequest("out", "NOTIFY", statusOf(err))
	return err
}

// statusOf is the final status behind a request's error: 200 for none, 0
// when no final response came (or the request was not sent).
func statusOf(err error) int {
	var se *sip.StatusError
	switch {
	case err == nil:
		return 200
	case errors.As(err, &se):
		return se.Status
	}
	return 0
}

// conditionOf is the XMPP condition a failed relay bounces with.
func conditionOf(err error) string {
	var xe *xmpp.Error
	if errors.As(err, &xe) {
		return xe.Condition
	}
	return xmpp.CondInternalServerError
}

// MetricStreams lists the live s2s streams for xgw_xmpp_streams; the
// partner label is a configured partner's domain or "other", so open
// federation cannot grow the series without bound.
func (s *Server) MetricStreams() []metrics.Stream {
	partners := *s.partners.Load()
	infos := s.xs.Streams()
	out := make([]metrics.Stream, 0, len(infos))
	for _, si := range infos {
		m := metrics.Stream{Direction: si.Direction, Partner: "other", State: "negotiating"}
		if d := strings.ToLower(si.Remote); partners[d] {
			m.Partner = d
		}
		if len(si.Authenticated) > 0 {
			m.State = "authenticated"
		}
		out = append(out, m)
	}
	return out
}

// MetricSubscriptions counts the live SIP subscription dialogs.
func (s *Server) MetricSubscriptions() int { return len(s.ep.Subscriptions()) }

// MetricEdgeUp reports the OPTIONS keepalive's view of the Edge.
func (s *Server) MetricEdgeUp() bool { return s.ep.EdgeHealth().Up }

// Ready says why the gateway cannot take traffic, nil when it can: both
// listeners serve, and the Edge answered the last keepalive.
func (s *Server) Ready() error {
	if !s.serving.Load() {
		return errors.New("the gateway is not serving (starting or stopping)")
	}
	if s.XMPPAddr() == nil {
		return errors.New("the XMPP listener is not bound")
	}
	if s.SIPAddr() == nil {
		return errors.New("the SIP endpoint is not listening")
	}
	h := s.ep.EdgeHealth()
	switch {
	case h.Up:
		return nil
	case h.Checked.IsZero():
		return errors.New("the Edge has not answered an OPTIONS keepalive yet")
	default:
		return fmt.Errorf("the Edge did not answer the last OPTIONS keepalive (since %s): %v", h.Since.UTC().Format("15:04:05"), h.Err)
	}
}

// PresenceView is the presence the gateway relayed, for the admin
// listener's presence API (gateway/presenceapi).
func (s *Server) PresenceView() *presenceapi.View { return s.view }
