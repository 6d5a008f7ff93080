package sip

import (
	"context"
	"errors"
	"fmt"

	"github.com/emiago/sipgo/sip"

	"github.com/xgw-gateway/xgw/gateway/trace"
)

// OutboundMessage is a MESSAGE (RFC 3428) the gateway sends to the Edge.
type OutboundMessage struct {
	From, To sip.Uri
	// CallID and CSeq correlate with the XMPP side; empty or zero means
	// a new Call-ID and CSeq 1.
	CallID string
	CSeq   uint32
	// ContentType is required when Body is not empty.
	ContentType string
	Body        []byte
	// Headers are added as given (Date, Subject, ...).
	Headers []sip.Header
}

// SendMessage sends a MESSAGE through the Edge and returns its final
// response, whatever the status. With no final response the error wraps
// ErrTimeout or ErrTransport so the caller can bounce to the XMPP sender
// with the matching condition.
func (e *Endpoint) SendMessage(ctx context.Context, m OutboundMessage) (*sip.Response, error) {
	if len(m.Body) > 0 && m.ContentType == "" {
		return nil, errors.New("sip: MESSAGE has a body but no Content-Type, expected e.g. text/plain;charset=UTF-8")
	}
	if m.To.Host == "" || m.From.Host == "" {
		return nil, fmt.Errorf("sip: MESSAGE from %q to %q: both need a host", m.From.String(), m.To.String())
	}
	req := sip.NewRequest(sip.MESSAGE, m.To)
	from := &sip.FromHeader{Address: m.From, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: m.To, Params: sip.NewParams()})
	if m.CallID != "" {
		cid := sip.CallIDHeader(m.CallID)
		req.AppendHeader(&cid)
	}
	cseq := m.CSeq
	if cseq == 0 {
		cseq = 1
	}
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.MESSAGE})
	for _, h := range m.Headers {
		req.AppendHeader(h)
	}
	if m.ContentType != "" {
		ct := sip.ContentTypeHeader(m.ContentType)
		req.AppendHeader(&ct)
	}
	req.SetBody(m.Body)
	res, err := e.do(ctx, req, e.edgeAddr)
	if err != nil {
		e.log.Warn("sip: MESSAGE failed", "to", m.To.String(), "call-id", callID(req), "err", err)
		return nil, err
	}
	if res.StatusCode >= 300 {
		e.log.Info("sip: MESSAGE refused", "to", m.To.String(), "call-id", callID(req), "status", res.StatusCode, "reason", res.Reason)
	}
	return res, nil
}

// do sends req to dest over the Edge transport and waits for the final
// response. Requests without a deadline get Config.RequestTimeout.
func (e *Endpoint) do(ctx context.Context, req *sip.Request, dest string) (*sip.Response, error) {
	if e.base.Err() != nil {
		return nil, fmt.Errorf("sip: %s: %w", req.Method, ErrClosed)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.cfg.RequestTimeout)
		defer cancel()
	}
	req.SetTransport(e.edgeTP)
	req.SetDestination(dest)
	if req.MaxForwards() == nil {
		mf := sip.MaxForwardsHeader(70)
		req.AppendHeader(&mf)
	}
	res, err := e.client.Do(ctx, req)
	if err != nil {
		return nil, classify(req.Method, dest, err)
	}
	e.trace(trace.In, res)
	return res, nil
}

// onMessage hands an inbound MESSAGE to the Handler.
func (e *Endpoint) onMessage(ctx context.Context, req *sip.Request) (*sip.Response, func()) {
	if to := req.To(); to != nil && to.Params.Has("tag") {
		// We hold no INVITE sessions, so a MESSAGE inside a dialog has
		// nowhere to go (RFC 3261 §12.2.2).
		return reply(req, 481, ""), nil
	}
	if len(req.Body()) > 0 && req.ContentType() == nil {
		return reply(req, 400, "Missing Content-Type"), nil
	}
	status, reason := e.cfg.Handler.HandleMessage(ctx, req)
	if status < 200 || status > 699 {
		e.log.Error("sip: handler returned an invalid final status", "status", status, "call-id", callID(req))
		return reply(req, 500, ""), nil
	}
	if ctx.Err() != nil {
		return reply(req, 504, ""), nil
	}
	return reply(req, status, reason), nil
}
