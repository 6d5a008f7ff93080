package xmpp

import (
	"context"
	"errors"
)

// deliver handles an authenticated inbound stanza addressed to one of our
// domains.
func (s *Server) deliver(ctx context.Context, st *Stanza) {
	if st.To.Localpart() == "" {
		s.domainStanza(ctx, st)
		return
	}
	if st.Name == "iq" && (st.Type == "get" || st.Type == "set") {
		// Users behind the gateway are SIP users: no IQ requests reach
		// them. Results and errors go to the Handler (answers to IQs the
		// SIP side sent).
		s.bounce(ctx, st, &Error{Type: ErrorTypeCancel, Condition: CondServiceUnavailable})
		return
	}
	if s.cfg.Handler == nil {
		s.bounce(ctx, st, &Error{Type: ErrorTypeCancel, Condition: CondServiceUnavailable, Text: "no SIP side attached"})
		return
	}
	err := s.cfg.Handler.HandleInbound(ctx, st)
	if err == nil {
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		s.log.Warn("xmpp inbound stanza failed", "from", st.From.String(), "to", st.To.String(), "stanza", st.Name, "err", err)
		e = &Error{Type: ErrorTypeWait, Condition: CondInternalServerError}
	}
	s.bounce(ctx, st, e)
}

// domainStanza answers stanzas addressed to the bare domain: XEP-0199 ping
// and XEP-0030 disco#info, service-unavailable for other requests.
func (s *Server) domainStanza(ctx context.Context, st *Stanza) {
	switch st.Name {
	case "presence":
		return // nothing to subscribe to at a gateway domain
	case "message":
		s.bounce(ctx, st, &Error{Type: ErrorTypeCancel, Condition: CondServiceUnavailable})
		return
	}
	if st.Type != "get" && st.Type != "set" {
		return // results and errors are never answered
	}
	child := firstChild(st)
	switch {
	case st.Type == "get" && child != nil && child.Name.Space == NSPing && child.Name.Local == "ping":
		s.reply(ctx, st.Reply("result"))
	case st.Type == "get" && child != nil && child.Name.Space == NSDiscoInfo && child.Name.Local == "query" && child.attr("node") == "":
		r := st.Reply("result")
		r.Inner = []byte(`<query xmlns='` + NSDiscoInfo + `'>` +
			`<identity category='gateway' type='simple' name='xgw SIP/SIMPLE gateway'/>` +
			`<feature var='` + NSDiscoInfo + `'/><feature var='` + NSPing + `'/></query>`)
		s.reply(ctx, r)
	default:
		s.bounce(ctx, st, &Error{Type: ErrorTypeCancel, Condition: CondServiceUnavailable})
	}
}

// firstChild returns the first child element of st.
func firstChild(st *Stanza) *node {
	n, err := parseNode(st.Bytes())
	if err != nil || len(n.Children) == 0 {
		return nil
	}
	return n.Children[0]
}

// bounce answers st with an error stanza, unless st is itself an error or
// result (RFC 6120 §8.3.1: never answer an error with an error).
func (s *Server) bounce(ctx context.Context, st *Stanza, e *Error) {
	if st.Type == "error" || (st.Name == "iq" && st.Type == "result") {
		return
	}
	s.reply(ctx, st.Bounce(e))
}

// reply sends a stanza we generated to a remote entity.
func (s *Server) reply(ctx context.Context, st *Stanza) {
	if err := s.Send(ctx, st); err != nil {
		s.log.Info("xmpp reply not sent", "to", st.To.String(), "stanza", st.Name, "err", err)
	}
}
