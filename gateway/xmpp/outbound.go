package xmpp

import (
	"context"
	"errors"
)

type outStream struct{}

// Send routes st to its recipient's domain through the outbound pool.
// st.From must be at one of our domains. It returns nil once the stanza is
// written or queued; a queued stanza that later cannot be delivered is
// bounced to its sender through the Handler (remote-server-not-found or
// remote-server-timeout). It returns an *Error when the stanza cannot even
// be queued: domain not allowed, queue full, or the remote domain failed
// recently and is backing off.
func (s *Server) Send(ctx context.Context, st *Stanza) error {
	return errors.New("xmpp: Send not implemented yet")
}
