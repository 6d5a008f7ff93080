package sip

import (
	"context"
	"errors"
	"fmt"

	"github.com/emiago/sipgo/sip"
)

// Errors our requests end with when no final response came. Callers test
// them with errors.Is to choose the bounce sent to the XMPP sender
// (RFC 7247 §5: remote-server-timeout vs remote-server-not-found).
var (
	// ErrTimeout: the request was sent but no final response arrived in time.
	ErrTimeout = errors.New("no final response in time")
	// ErrTransport: the request could not be sent (connect, TLS handshake,
	// write).
	ErrTransport = errors.New("transport failure")
	// ErrNoDialog: no subscription dialog has the given ID.
	ErrNoDialog = errors.New("no such subscription dialog")
	// ErrClosed: the endpoint is closed.
	ErrClosed = errors.New("endpoint closed")
)

// StatusError is a final non-2xx response to one of our requests.
type StatusError struct {
	Method sip.RequestMethod
	Status int
	Reason string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("sip: %s answered %d %s", e.Method, e.Status, e.Reason)
}

// classify wraps an error from sipgo's client so that errors.Is finds
// ErrTimeout or ErrTransport, keeping the cause.
func classify(method sip.RequestMethod, dest string, err error) error {
	switch {
	case errors.Is(err, sip.ErrTransactionTimeout), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("sip: %s via %s: %w: %w", method, dest, ErrTimeout, err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("sip: %s via %s: %w", method, dest, err)
	default:
		return fmt.Errorf("sip: %s via %s: %w: %w", method, dest, ErrTransport, err)
	}
}
