package xmpp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
)

// Reconnect backoff after a failed outbound stream: doubling from
// backoffMin up to backoffMax. While it runs, Send fails fast.
const (
	backoffMin = time.Second
	backoffMax = 5 * time.Minute
)

type outState int

const (
	outConnecting outState = iota
	outReady
	outFailed // backing off; no connection
)

// outStream is the pool entry for one (local, remote) pair. Idle, it holds
// one connection, one reader goroutine and one timer; stanzas are written
// by the sender's goroutine.
type outStream struct {
	srv *Server
	key pair

	mu       sync.Mutex // guards the following
	state    outState
	queue    []*Stanza
	oc       *outConn
	idle     *time.Timer
	lastUse  time.Time
	failures int
	retryAt  time.Time
	lastErr  *Error
}

// Send routes st to its recipient's domain through the outbound pool.
// st.From must be at one of our domains. It returns nil once the stanza is
// written or queued; a queued stanza that later cannot be delivered is
// bounced to its sender through the Handler (remote-server-not-found or
// remote-server-timeout). It returns an *Error when the stanza cannot even
// be queued: domain not allowed, queue full, or the remote domain failed
// recently and is backing off.
func (s *Server) Send(ctx context.Context, st *Stanza) error {
	switch st.Name {
	case "message", "presence", "iq":
	default:
		return fmt.Errorf("xmpp: Send: stanza name %q, expected message, presence or iq", st.Name)
	}
	local, remote := strings.ToLower(st.From.Domainpart()), strings.ToLower(st.To.Domainpart())
	if !s.serves(local) {
		return fmt.Errorf("xmpp: Send: from %q is not at one of our domains %v", st.From, s.cfg.Domains)
	}
	if remote == "" {
		return fmt.Errorf("xmpp: Send: stanza has no 'to'")
	}
	if s.serves(remote) {
		s.deliver(ctx, st) // between two of our own domains: no s2s needed
		return nil
	}
	if _, err := s.pol.mode(remote); err != nil {
		return &Error{Type: ErrorTypeCancel, Condition: CondForbidden, Text: err.Error()}
	}
	return s.send(ctx, st, pair{local, remote}, true)
}

func (s *Server) send(ctx context.Context, st *Stanza, key pair, retry bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return &Error{Type: ErrorTypeWait, Condition: CondServiceUnavailable, Text: "gateway shutting down"}
	}
	o := s.out[key]
	if o == nil {
		o = &outStream{srv: s, key: key, state: outFailed}
		s.out[key] = o
	}
	s.mu.Unlock()

	o.mu.Lock()
	switch o.state {
	case outReady:
		o.lastUse = time.Now()
		oc := o.oc
		o.mu.Unlock()
		err := oc.st.writeCtx(ctx, st.Bytes())
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			// A partial write leaves the stream unusable either way.
			o.lost(oc, fmt.Sprintf("write abandoned: %v", ctx.Err()))
			return ctx.Err()
		}
		o.lost(oc, fmt.Sprintf("write failed: %v", err))
		if retry {
			return s.send(ctx, st, key, false)
		}
		return &Error{Type: ErrorTypeWait, Condition: CondRemoteServerTimeout, Text: err.Error()}
	case outConnecting:
		defer o.mu.Unlock()
		return o.enqueue(st)
	default: // outFailed
		defer o.mu.Unlock()
		if time.Now().Before(o.retryAt) {
			e := *o.lastErr
			e.Text = fmt.Sprintf("%s (retrying after %s)", e.Text, o.retryAt.Format(time.TimeOnly))
			return &e
		}
		if !s.track(o, key.remote) {
			return &Error{Type: ErrorTypeWait, Condition: CondResourceConstraint, Text: fmt.Sprintf("stream limit reached (total %d, per peer %d)", s.cfg.MaxStreams, s.cfg.MaxStreamsPerPeer)}
		}
		if !s.add() {
			s.untrack(o, key.remote)
			return &Error{Type: ErrorTypeWait, Condition: CondServiceUnavailable, Text: "gateway shutting down"}
		}
		o.state = outConnecting
		go o.connect()
		return o.enqueue(st)
	}
}

func (o *outStream) enqueue(st *Stanza) error {
	if len(o.queue) >= o.srv.cfg.QueueSize {
		return &Error{Type: ErrorTypeWait, Condition: CondResourceConstraint, Text: fmt.Sprintf("%d stanzas already wait for the stream to %s", len(o.queue), o.key.remote)}
	}
	o.queue = append(o.queue, st)
	return nil
}

func (o *outStream) info() StreamInfo {
	o.mu.Lock()
	oc := o.oc
	o.mu.Unlock()
	if oc == nil {
		return StreamInfo{Direction: "out", Local: o.key.local, Remote: o.key.remote}
	}
	return oc.info()
}

func (o *outStream) shutdown() {
	o.mu.Lock()
	oc := o.oc
	o.mu.Unlock()
	if oc != nil {
		oc.st.close()
	}
}

// connect runs while the stream is set up, then becomes its reader.
func (o *outStream) connect() {
	s := o.srv
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.NegotiationTimeout)
	oc, e := s.dialAuth(ctx, o.key.local, o.key.remote)
	cancel()
	o.mu.Lock()
	if e != nil {
		q := o.queue
		o.queue = nil
		o.state = outFailed
		o.failures++
		o.retryAt = time.Now().Add(min(backoffMin<<min(o.failures-1, 20), backoffMax))
		o.lastErr = e
		o.mu.Unlock()
		s.untrack(o, o.key.remote)
		s.log.Info("xmpp stream refused", "dir", "out", "local", o.key.local, "remote", o.key.remote,
			"reason", e.Condition+": "+e.Text, "bounced", len(q))
		for _, st := range q {
			s.bounceLocal(st, e)
		}
		return
	}
	// Flush in order while Send still queues behind us.
	for len(o.queue) > 0 {
		st := o.queue[0]
		o.queue = o.queue[1:]
		if err := oc.st.write(st.Bytes()); err != nil {
			q := append([]*Stanza{st}, o.queue...)
			o.queue = nil
			o.oc = oc
			o.state = outReady // so that lost takes it down
			o.mu.Unlock()
			o.lost(oc, fmt.Sprintf("write failed: %v", err))
			for _, st := range q {
				s.bounceLocal(st, &Error{Type: ErrorTypeWait, Condition: CondRemoteServerTimeout, Text: err.Error()})
			}
			return
		}
	}
	o.queue = nil
	o.oc = oc
	o.state = outReady
	o.failures = 0
	o.lastUse = time.Now()
	o.idle = time.AfterFunc(s.cfg.IdleTimeout, o.checkIdle)
	o.mu.Unlock()
	o.read(oc)
}

// read consumes what the peer sends on our outbound stream (whitespace,
// its closing tag, a stream error) until the stream ends.
func (o *outStream) read(oc *outConn) {
	oc.st.conn.SetDeadline(time.Time{})
	for {
		el, err := oc.next()
		if err != nil {
			reason := err.Error()
			if errors.Is(err, errStreamEnd) {
				reason = "closed by peer"
			}
			o.lost(oc, reason)
			return
		}
		oc.log("xmpp unexpected element on outbound stream", "element", elementString(el))
	}
}

// checkIdle closes the stream when nothing was sent for IdleTimeout.
func (o *outStream) checkIdle() {
	o.mu.Lock()
	oc := o.oc
	left := o.srv.cfg.IdleTimeout - time.Since(o.lastUse)
	if o.state != outReady {
		o.mu.Unlock()
		return
	}
	if left > 0 {
		o.idle.Reset(left)
		o.mu.Unlock()
		return
	}
	o.mu.Unlock()
	o.lost(oc, "idle")
}

// lost takes a ready stream out of service; the next Send reconnects.
func (o *outStream) lost(oc *outConn, reason string) {
	o.mu.Lock()
	if o.oc != oc {
		o.mu.Unlock()
		return
	}
	o.oc = nil
	o.state = outFailed
	o.retryAt = time.Time{}
	if o.idle != nil {
		o.idle.Stop()
	}
	o.mu.Unlock()
	oc.st.close()
	o.srv.untrack(o, o.key.remote)
	oc.log("xmpp stream closed", "reason", reason)
}

// bounceLocal returns an undeliverable outbound stanza to its sender at
// our domain through the Handler. Stanzas we generated ourselves (from the
// bare domain) or errors are only logged: nobody waits for them.
func (s *Server) bounceLocal(st *Stanza, e *Error) {
	if st.Type == "error" || (st.Name == "iq" && st.Type == "result") || st.From.Localpart() == "" || s.cfg.Handler == nil {
		s.log.Info("xmpp stanza dropped", "from", st.From.String(), "to", st.To.String(), "stanza", st.Name, "reason", e.Condition+": "+e.Text)
		return
	}
	if e.Condition == CondRemoteConnFailed {
		e = &Error{Type: e.Type, Condition: CondRemoteServerNotFound, Text: e.Text}
	}
	if err := s.cfg.Handler.HandleInbound(s.ctx, st.Bounce(e)); err != nil {
		s.log.Info("xmpp bounce not delivered", "to", st.From.String(), "err", err)
	}
}

// dialAuth opens and authenticates an outbound stream (originating server).
func (s *Server) dialAuth(ctx context.Context, local, remote string) (*outConn, *Error) {
	mode, err := s.pol.mode(remote)
	if err != nil {
		return nil, &Error{Type: ErrorTypeCancel, Condition: CondForbidden, Text: err.Error()}
	}
	oc, e := s.connect(ctx, "out", local, remote, needsTLS(mode))
	if e != nil {
		return nil, e
	}
	stop := context.AfterFunc(ctx, func() { oc.st.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	oc.log("xmpp stream opened", "tls", oc.secure, "peer_cert_valid", oc.secure && oc.certErr == nil)
	method, err := oc.authenticate(mode)
	if err != nil {
		oc.st.close()
		var ae *Error
		if errors.As(err, &ae) {
			return nil, ae
		}
		return nil, oc.classify(err)
	}
	oc.mu.Lock()
	oc.method = method
	oc.mu.Unlock()
	oc.log("xmpp stream authenticated", "auth", method, "tls", oc.secure)
	return oc, nil
}

// authenticate picks the mechanism deterministically: SASL EXTERNAL when
// offered, the peer's certificate validated and we have one to present;
// dialback otherwise (or when EXTERNAL fails).
func (oc *outConn) authenticate(mode string) (string, error) {
	s := oc.srv
	if needsValidCert(mode) && (!oc.secure || oc.certErr != nil) {
		return "", &Error{Type: ErrorTypeCancel, Condition: CondRemoteServerNotFound, Text: fmt.Sprintf("xmpp.federation requires a valid certificate for %s (auth %s): %v", oc.remote, mode, oc.certErr)}
	}
	if oc.secure && oc.certErr == nil && s.certFor(oc.local) != nil && oc.offersExternal() {
		ok, err := oc.saslExternal()
		if err != nil {
			return "", err
		}
		if ok && mode != config.AuthTLSDialback {
			return "sasl-external", nil
		}
		if ok {
			// tls+dialback: dialback on top, on the restarted stream.
			return oc.dialback()
		}
	}
	return oc.dialback()
}

func (oc *outConn) offersExternal() bool {
	if oc.feats == nil {
		return false
	}
	m := oc.feats.child(NSSASL, "mechanisms")
	if m == nil {
		return false
	}
	for _, c := range m.Children {
		if c.Name.Local == "mechanism" && strings.TrimSpace(c.Text) == "EXTERNAL" {
			return true
		}
	}
	return false
}

// saslExternal runs XEP-0178 as the initiator; ok false means the peer
// refused and dialback may still be tried.
func (oc *outConn) saslExternal() (ok bool, err error) {
	authz := base64.StdEncoding.EncodeToString([]byte(oc.local))
	if err := oc.st.write([]byte(`<auth xmlns='` + NSSASL + `' mechanism='EXTERNAL'>` + authz + `</auth>`)); err != nil {
		return false, err
	}
	el, err := oc.next()
	if err != nil {
		return false, err
	}
	switch el.Name.Local {
	case "success":
		oc.st.reset(oc.st.conn)
		return true, oc.open()
	case "failure":
		oc.log("xmpp SASL EXTERNAL refused, falling back to dialback", "answer", elementString(el))
		return false, nil
	}
	return false, fmt.Errorf("unexpected answer to SASL auth: %s", elementString(el))
}

// dialback runs the originating server's side (XEP-0220 §2.1.1).
func (oc *outConn) dialback() (string, error) {
	s := oc.srv
	if !oc.hdr.Dialback && (oc.feats == nil || oc.feats.child(NSDialbackFeature, "dialback") == nil) {
		return "", &Error{Type: ErrorTypeCancel, Condition: CondRemoteServerNotFound, Text: oc.remote + " supports neither dialback nor SASL EXTERNAL with our certificate"}
	}
	if oc.hdr.ID == "" {
		return "", &Error{Type: ErrorTypeCancel, Condition: CondRemoteServerNotFound, Text: oc.remote + " sent no stream id, which dialback needs"}
	}
	key := s.keys.key(oc.remote, oc.local, oc.hdr.ID)
	if err := oc.st.write(dbRequest("result", oc.local, oc.remote, "", key)); err != nil {
		return "", err
	}
	for {
		el, err := oc.next()
		if err != nil {
			return "", err
		}
		if el.Name != nameDBResult || !strings.EqualFold(el.attr("from"), oc.remote) || !strings.EqualFold(el.attr("to"), oc.local) {
			oc.log("xmpp unexpected element during dialback", "element", elementString(el))
			continue
		}
		oc.srv.dialbackDone("out", el.attr("type"))
		switch el.attr("type") {
		case "valid":
			return "dialback", nil
		case "invalid":
			// XEP-0220 §2.1.1: queued stanzas bounce with internal-server-error.
			return "", &Error{Type: ErrorTypeCancel, Condition: CondInternalServerError, Text: oc.remote + " found our dialback key invalid"}
		default:
			// XEP-0220 §2.4: a dialback error bounces with remote-server-timeout.
			cond, text := stanzaErrorOf(el)
			return "", &Error{Type: ErrorTypeWait, Condition: CondRemoteServerTimeout, Text: oc.remote + " refused dialback: " + cond + " " + text}
		}
	}
}
