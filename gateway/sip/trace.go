package sip

import (
	"context"

	"github.com/emiago/sipgo/sip"

	"github.com/xgw-gateway/xgw/gateway/trace"
)

// The protocol trace sees SIP messages as sipgo parsed or built them,
// serialised as sipgo writes them (header order and values as on the
// wire). Four places cover every message of ours: handle (requests in),
// respond (responses out), the client's TxRequester (requests out, once
// sipgo added Via, Call-ID and the rest) and do (final responses in). The
// guard traces its own error replies. sip.SIPDebug was not used: it is a
// package global shared by every endpoint in the process and gives raw
// reads in pieces, not messages; sipgo dials the Edge itself, so its
// outbound connections cannot be wrapped either.

// trace records m unless SIP is not traced; the peer is where m came from
// or went to.
func (e *Endpoint) trace(dir trace.Dir, m sip.Message) {
	if !e.cfg.Tracer.On(trace.SIP) {
		return
	}
	peer := m.Destination()
	if dir == trace.In {
		peer = m.Source()
	}
	e.cfg.Tracer.Trace(trace.Event{Proto: trace.SIP, Dir: dir, Peer: peer, Msg: []byte(m.String())})
}

// tracingRequester sends requests through the transaction layer as
// sipgo's client does, and traces each once it was handed to the
// transport.
type tracingRequester struct {
	e  *Endpoint
	tl *sip.TransactionLayer
}

func (r tracingRequester) Request(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	tx, err := r.tl.Request(ctx, req)
	if err == nil {
		r.e.trace(trace.Out, req)
	}
	return tx, err
}
