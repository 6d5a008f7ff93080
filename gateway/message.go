package gateway

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"mellium.im/xmpp/stanza"

	"github.com/xgw-gateway/xgw/gateway/metrics"
	"github.com/xgw-gateway/xgw/gateway/sip"
	"github.com/xgw-gateway/xgw/gateway/translate"
	"github.com/xgw-gateway/xgw/gateway/xmpp"
)

// typingIDPrefix marks the stanza id of a chat-state-only message from SIP.
// translate's ids are "s" and hex digits, so they never start with it; a bounce
// carries the id back (RFC 6120 §8.3.1) and tells a failed typing
// notification, which is only logged, from a failed text message, whose
// sender is told.
const typingIDPrefix = "cs-"

// noticeTimeout bounds the MESSAGE that tells a SIP sender of a bounce.
const noticeTimeout = 5 * time.Second

// messageFromSIP relays a SIP MESSAGE (text or RFC 3994 isComposing) to
// XMPP (RFC 7572 §5) and returns the final status for the transaction.
//
// The answer reflects what is known when the stanza is handed to the s2s
// pool: 200 once it is written on the partner's stream or queued while that
// stream is set up (RFC 3428 §7: the 200 says the request was accepted by
// the next hop, not read by the user). Failures known at once are mapped
// with translate.StatusForCondition (RFC 7247 §6.1): a partner refused by
// policy is 403, one whose stream failed recently and is backing off 404
// (remote-server-not-found), a full queue 500 (resource-constraint), a
// stopping gateway 503. A failure known only later (the stream could not
// be set up, or the partner bounced the message) reaches messageBounced,
// which tells the sender with a MESSAGE of its own.
func (s *Server) messageFromSIP(ctx context.Context, req *gosip.Request) (int, string) {
	start := time.Now()
	if !s.enter() {
		s.log.Info("sip MESSAGE refused: gateway shutting down", "call-id", callID(req), "status", 503)
		return 503, "Service Unavailable"
	}
	defer s.exit()
	msg, err := s.mapper.MessageFromSIP(req)
	if err != nil {
		m := translate.MapError(err)
		s.log.Info("sip MESSAGE refused", "from", fromOf(req), "to", req.Recipient.String(),
			"call-id", callID(req), "status", m.Status, "cause", err)
		return m.Status, m.Reason
	}
	id := msg.ID
	if msg.Body == "" && msg.ChatState != "" {
		id = typingIDPrefix + id
	}
	st := &xmpp.Stanza{Name: "message", From: msg.From, To: msg.To, Type: string(msg.Type), ID: id,
		Lang: msg.Lang, Inner: msg.AppendInner(nil)}
	if err := s.xs.Send(ctx, st); err != nil {
		status, reason := statusForSendError(err)
		s.met.Bounce("sip", conditionOf(err))
		s.log.Info("sip MESSAGE not relayed", "from", msg.From.String(), "to", msg.To.String(),
			"call-id", msg.Thread, "status", status, "cause", err)
		return status, reason
	}
	s.met.Relayed(metrics.SIPToXMPP, start)
	return 200, "OK"
}

// statusForSendError maps an error of xmpp.Server.Send to a SIP status.
func statusForSendError(err error) (int, string) {
	var xe *xmpp.Error
	if errors.As(err, &xe) {
		return translate.StatusForCondition(stanza.Condition(xe.Condition))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return 408, "Request Timeout"
	}
	m := translate.MapError(err)
	return m.Status, m.Reason
}

// queueToSIP hands an XMPP message to its conversation's lane (lanes.go)
// and returns at once, so that the partner's stream keeps flowing while the
// Edge answers. The lane relays it with messageToSIP and bounces it to its
// sender itself when that fails: the xmpp layer's own bounce on a returned
// error is only used when the message cannot even be queued.
func (s *Server) queueToSIP(ctx context.Context, st *xmpp.Stanza) error {
	if !s.enter() {
		s.log.Info("xmpp message refused: gateway shutting down", "from", st.From.String(), "to", st.To.String(), "id", st.ID)
		return &xmpp.Error{Type: xmpp.ErrorTypeWait, Condition: xmpp.CondServiceUnavailable, Text: "gateway shutting down"}
	}
	// The job outlives this call and the stream's context; SendMessage
	// bounds it with the SIP request timeout.
	bg := context.WithoutCancel(ctx)
	start := time.Now()
	err := s.lanes.submit(ctx, st.From.Bare().String()+" "+st.To.Bare().String(), func() {
		defer s.exit()
		if err := s.messageToSIP(bg, st); err != nil {
			s.met.Bounce("xmpp", conditionOf(err))
			s.bounceToXMPP(bg, st, err)
			return
		}
		s.met.Relayed(metrics.XMPPToSIP, start)
	})
	if err != nil {
		s.met.Bounce("xmpp", xmpp.CondResourceConstraint)
		s.exit()
		return &xmpp.Error{Type: xmpp.ErrorTypeWait, Condition: xmpp.CondResourceConstraint,
			Text: "too many messages wait for the SIP side"}
	}
	return nil
}

// bounceToXMPP returns st to its sender with the error's condition (RFC
// 6120 §8.3.1), as the xmpp layer does for errors a Handler returns.
func (s *Server) bounceToXMPP(ctx context.Context, st *xmpp.Stanza, err error) {
	var e *xmpp.Error
	if !errors.As(err, &e) {
		e = &xmpp.Error{Type: xmpp.ErrorTypeWait, Condition: xmpp.CondInternalServerError}
	}
	ctx, cancel := context.WithTimeout(ctx, noticeTimeout)
	defer cancel()
	if err := s.xs.Send(ctx, st.Bounce(e)); err != nil {
		s.log.Warn("xmpp bounce not sent", "to", st.From.String(), "id", st.ID, "condition", e.Condition, "err", err)
	}
}

// messageToSIP relays an XMPP message to the SIP user through the Edge
// (RFC 7572 §4). A body, with or without a chat state, is one text/plain
// MESSAGE; a chat state alone is an RFC 3994 isComposing MESSAGE. The
// Edge's final response decides the outcome: 2xx delivers, anything else
// returns an *xmpp.Error for the sender's bounce with the condition of
// RFC 7247 §6.2 (translate.ConditionForStatus); no answer in time is
// remote-server-timeout, an unreachable Edge service-unavailable.
func (s *Server) messageToSIP(ctx context.Context, st *xmpp.Stanza) error {
	head := stanza.Message{From: st.From, To: st.To, ID: st.ID, Type: stanza.MessageType(st.Type), Lang: st.Lang}
	msg, err := translate.MessageFromInner(head, st.Inner)
	if err != nil {
		return s.refuseXMPP(st, err)
	}
	sm, err := s.mapper.MessageToSIP(&msg)
	if err != nil {
		return s.refuseXMPP(st, err)
	}
	to := sm.To
	if len(sm.RequestURI.UriParams) > 0 {
		to = sm.RequestURI // a GRUU target (RFC 7247 §5.3)
	}
	res, err := s.ep.SendMessage(ctx, sip.OutboundMessage{From: sm.From, To: to, CallID: sm.CallID,
		ContentType: sm.ContentType, Body: sm.Body, Headers: sm.Headers()})
	if err != nil {
		return s.refuseXMPP(st, edgeFailure(err))
	}
	if res.StatusCode >= 300 {
		cond, typ := translate.ConditionForStatus(res.StatusCode)
		e := &xmpp.Error{Type: string(typ), Condition: string(cond),
			Text: fmt.Sprintf("the SIP side answered %d %s", res.StatusCode, res.Reason)}
		s.log.Info("xmpp message bounced", "from", st.From.String(), "to", st.To.String(), "id", st.ID,
			"status", res.StatusCode, "condition", e.Condition)
		return e
	}
	return nil
}

// edgeFailure wraps an error of SendMessage (no final response) in the
// translate sentinel that MapError turns into the sender's bounce.
func edgeFailure(err error) error {
	switch {
	case errors.Is(err, sip.ErrTimeout):
		return fmt.Errorf("%w: %w", translate.ErrEdgeTimeout, err)
	case errors.Is(err, sip.ErrClosed), errors.Is(err, context.Canceled):
		return fmt.Errorf("%w (gateway shutting down): %w", translate.ErrEdgeUnreachable, err)
	default:
		return fmt.Errorf("%w: %w", translate.ErrEdgeUnreachable, err)
	}
}

// refuseXMPP logs why a stanza was not relayed and returns its bounce. The
// text for the remote sender names the cause but not our internal
// addresses: Edge failures say only which sentinel they were.
func (s *Server) refuseXMPP(st *xmpp.Stanza, err error) error {
	m := translate.MapError(err)
	text := m.Text
	for _, sentinel := range []error{translate.ErrEdgeTimeout, translate.ErrEdgeUnreachable} {
		if errors.Is(err, sentinel) {
			text = sentinel.Error()
		}
	}
	s.log.Info("xmpp message bounced", "from", st.From.String(), "to", st.To.String(), "id", st.ID,
		"condition", string(m.Condition), "cause", err)
	return &xmpp.Error{Type: string(m.Type), Condition: string(m.Condition), Text: text}
}

// messageBounced handles a type='error' message addressed to one of our SIP
// users: the bounce of a message that user sent. Its MESSAGE transaction
// was answered 200 already (messageFromSIP), so the sender is told with a
// MESSAGE of its own, from the XMPP address it wrote to, with a short text
// naming the error condition (RFC 7247 §6 maps conditions to statuses, but a
// status can no longer be given). Bounced typing notifications are only
// logged: a text message about a lost "is typing" would be noise.
func (s *Server) messageBounced(ctx context.Context, st *xmpp.Stanza) {
	var b bounce
	if err := st.Decode(&b); err != nil {
		s.log.Warn("xmpp bounce unreadable", "from", st.From.String(), "to", st.To.String(), "id", st.ID, "err", err)
	}
	cond, text := b.condition()
	if strings.HasPrefix(st.ID, typingIDPrefix) {
		s.log.Info("typing notification bounced", "from", st.To.String(), "to", st.From.String(),
			"id", st.ID, "condition", cond, "text", text)
		return
	}
	s.met.Bounce("sip", cond)
	notice := "[xgw] Your message to " + st.From.Bare().String() + " was not delivered: " + cond
	if text != "" {
		notice += " (" + text + ")"
	}
	if body := strings.TrimSpace(b.Body); body != "" {
		const quote = 200 // runes of the original to remind the sender
		if r := []rune(body); len(r) > quote {
			body = string(r[:quote]) + "…"
		}
		notice += "\n> " + strings.ReplaceAll(body, "\n", "\n> ")
	}
	from, err1 := s.mapper.URIFromJID(st.From.Bare(), translate.SideXMPP)
	to, err2 := s.mapper.URIFromJID(st.To.Bare(), translate.SideSIP)
	if err := errors.Join(err1, err2); err != nil {
		s.log.Warn("xmpp bounce not relayed: no SIP address for it", "from", st.From.String(), "to", st.To.String(),
			"id", st.ID, "condition", cond, "err", err)
		return
	}
	s.log.Info("xmpp bounce relayed to the SIP sender", "from", st.From.String(), "to", st.To.String(),
		"id", st.ID, "condition", cond, "text", text)
	// The bounce may come from a stream or pool that is closing (a
	// graceful stop bounces what is still queued): the notice gets its own
	// deadline instead of that context's end.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), noticeTimeout)
	defer cancel()
	res, err := s.ep.SendMessage(ctx, sip.OutboundMessage{From: from, To: to,
		ContentType: translate.ContentTypeText, Body: []byte(notice)})
	switch {
	case err != nil:
		s.log.Warn("bounce notice not delivered to the SIP sender", "to", to.String(), "id", st.ID, "err", err)
	case res.StatusCode >= 300:
		s.log.Warn("bounce notice refused by the SIP side", "to", to.String(), "id", st.ID, "status", res.StatusCode)
	}
}

// bounce is what messageBounced reads of an error stanza: the original
// body when echoed, and the error (RFC 6120 §8.3.2).
type bounce struct {
	Body  string `xml:"body"`
	Error struct {
		Type  string `xml:"type,attr"`
		Conds []struct {
			XMLName xml.Name
			Text    string `xml:",chardata"`
		} `xml:",any"`
	} `xml:"error"`
}

func (b *bounce) condition() (cond, text string) {
	for _, c := range b.Error.Conds {
		if c.XMLName.Space != xmpp.NSStanzaErrors {
			continue
		}
		if c.XMLName.Local == "text" {
			text = c.Text
		} else if cond == "" {
			cond = c.XMLName.Local
		}
	}
	if cond == "" {
		cond = xmpp.CondUndefined
	}
	return cond, text
}

func fromOf(req *gosip.Request) string {
	if h := req.From(); h != nil {
		return h.Address.String()
	}
	return ""
}

func callID(req *gosip.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}
