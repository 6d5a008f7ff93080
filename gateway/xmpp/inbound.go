package xmpp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// inStream is one accepted stream: the receiving server (db:result), the
// authoritative server (db:verify) and the SASL EXTERNAL server.
type inStream struct {
	srv    *Server
	st     *stream
	peer   string
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex // guards the following
	id      string
	local   string // our domain ('to' of the header)
	remote  string // the peer's 'from', possibly empty
	peerKey string
	secure  bool
	certs   []*x509.Certificate
	certErr error // verifyPeer(certs, remote)
	sasl    bool
	authed  map[pair]string // domain pair -> "dialback" | "sasl-external"
	pending map[pair]bool
}

func (in *inStream) info() StreamInfo {
	in.mu.Lock()
	defer in.mu.Unlock()
	si := StreamInfo{Direction: "in", Peer: in.peer, Local: in.local, Remote: in.remote, TLS: in.secure,
		PeerCertValid: in.secure && in.remote != "" && in.certErr == nil}
	for p, m := range in.authed {
		si.Authenticated = append(si.Authenticated, p.remote+"->"+p.local)
		if si.Auth == "" || m == "sasl-external" {
			si.Auth = m
		}
	}
	return si
}

func (in *inStream) shutdown() {
	in.st.fail(&StreamError{Condition: SECSystemShutdown, Text: "gateway shutting down"}, in.localDomain())
}

func (in *inStream) localDomain() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.local
}

func (in *inStream) isAuthenticated() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.authed) > 0
}

func (in *inStream) log(msg string, args ...any) {
	in.mu.Lock()
	base := []any{"dir", "in", "peer", in.peer, "local", in.local, "remote", in.remote}
	in.mu.Unlock()
	in.srv.log.Info(msg, append(base, args...)...)
}

func (s *Server) serveInbound(conn net.Conn) {
	in := &inStream{
		srv:     s,
		st:      newStream(conn, s.cfg.MaxStanzaSize, writeTimeout),
		peer:    conn.RemoteAddr().String(),
		authed:  map[pair]string{},
		pending: map[pair]bool{},
	}
	in.st.traceAs(s.cfg.Tracer, in.peer, "", "", false)
	in.ctx, in.cancel = context.WithCancel(s.ctx)
	defer in.cancel()
	if !s.track(in, "") {
		in.log("xmpp stream refused", "reason", "too many streams", "max_streams", s.cfg.MaxStreams)
		in.st.fail(streamErr(SECResourceConstraint, "too many streams (limit %d)", s.cfg.MaxStreams), s.cfg.Domains[0])
		return
	}
	defer func() { s.untrack(in, in.peerKey) }()
	conn.SetDeadline(time.Now().Add(s.cfg.NegotiationTimeout))
	if tc, ok := conn.(*tls.Conn); ok { // XEP-0368 direct TLS
		if err := tc.HandshakeContext(in.ctx); err != nil {
			in.log("xmpp stream refused", "reason", "direct TLS handshake: "+err.Error())
			conn.Close()
			return
		}
		in.secure = true
		in.certs = tc.ConnectionState().PeerCertificates
	}
	err := in.run()
	var se *StreamError
	switch {
	case errors.As(err, &se) && !se.Remote:
		msg := "xmpp stream refused"
		if in.isAuthenticated() {
			msg = "xmpp stream closed"
		}
		in.log(msg, "reason", se.Error())
		in.st.fail(se, in.localDomain())
	case err == nil || errors.Is(err, errStreamEnd):
		in.st.close()
		in.log("xmpp stream closed", "reason", "closed by peer")
	case errors.Is(err, net.ErrClosed):
		in.log("xmpp stream closed", "reason", "closed by the gateway")
	default:
		in.st.close()
		in.log("xmpp stream closed", "reason", err.Error())
	}
}

// run reads stream headers and elements until the stream ends. A returned
// *StreamError is sent to the peer by the caller.
func (in *inStream) run() error {
	for {
		h, err := in.st.readHeader()
		if err != nil {
			return err
		}
		if err := in.open(h); err != nil {
			return err
		}
		for restart := false; !restart; {
			el, err := in.st.next()
			if err != nil {
				return err
			}
			if restart, err = in.handle(el); err != nil {
				return err
			}
		}
	}
}

// open answers a (re)started stream header: our header and the features.
func (in *inStream) open(h *header) error {
	s := in.srv
	to := strings.ToLower(h.To)
	in.mu.Lock()
	defer in.mu.Unlock()
	if to == "" {
		to = strings.ToLower(s.cfg.Domains[0]) // RFC 6120 §4.7.2: a default domain
	}
	if !s.serves(to) {
		return streamErr(SECHostUnknown, "this gateway does not serve %s", h.To)
	}
	if in.local != "" && to != in.local {
		return streamErr(SECHostUnknown, "stream restarted for %s, was %s", to, in.local)
	}
	first := in.local == ""
	in.local = to
	in.remote = strings.ToLower(h.From)
	key := in.remote
	if key == "" {
		key, _, _ = net.SplitHostPort(in.peer)
	}
	if !s.retrack(in.peerKey, key) {
		return streamErr(SECResourceConstraint, "too many streams from %s (limit %d)", key, s.cfg.MaxStreamsPerPeer)
	}
	in.peerKey = key
	if in.secure && in.remote != "" {
		in.certErr = s.verifyPeer(in.certs, in.remote)
	}
	in.id = newStreamID()
	in.st.traceLabel(in.id, in.local, in.remote)
	if first {
		s.log.Info("xmpp stream opened", "dir", "in", "peer", in.peer, "local", in.local, "remote", in.remote)
	}
	var b bytes.Buffer
	b.Write(openHeader(in.local, in.remote, in.id))
	if h.Version != "" {
		b.WriteString(`<stream:features>`)
		if !in.secure && s.srvTLS != nil && s.certFor(in.local) != nil {
			b.WriteString(`<starttls xmlns='` + NSTLS + `'/>`)
		}
		if in.secure && in.remote != "" && in.certErr == nil && !in.sasl {
			b.WriteString(`<mechanisms xmlns='` + NSSASL + `'><mechanism>EXTERNAL</mechanism></mechanisms>`)
		}
		b.WriteString(`<dialback xmlns='` + NSDialbackFeature + `'><errors/></dialback></stream:features>`)
	}
	in.st.wmu.Lock()
	defer in.st.wmu.Unlock()
	in.st.headerSent = true
	return in.st.writeLocked(b.Bytes())
}

// handle processes one top-level element; restart is true when the peer
// must now send a new stream header.
func (in *inStream) handle(el *node) (restart bool, err error) {
	switch el.Name {
	case nameStartTLS:
		return true, in.startTLS()
	case nameSASLAuth:
		return in.saslExternal(el)
	case nameDBResult:
		return false, in.dbResult(el)
	case nameDBVerify:
		return false, in.dbVerify(el)
	case nameStreamErr:
		return false, parseStreamError(el)
	}
	switch el.Name.Local {
	case "message", "presence", "iq":
		return false, in.stanza(el) // checks the namespace too
	}
	return false, streamErr(SECUnsupportedStanzaType, "unexpected element %s", qname(el))
}

func (in *inStream) startTLS() error {
	s := in.srv
	in.mu.Lock()
	refuse := in.secure || s.srvTLS == nil || s.certFor(in.local) == nil || len(in.authed) > 0
	in.mu.Unlock()
	if refuse {
		// RFC 6120 §5.4.2.2: <failure/> then close; the caller closes,
		// after the stream error, so the stream ends only once.
		in.st.write([]byte(`<failure xmlns='` + NSTLS + `'/>`))
		return streamErr(SECPolicyViolation, "STARTTLS not available on this stream (already secure, authenticated, or no certificate configured)")
	}
	if err := in.st.write([]byte(`<proceed xmlns='` + NSTLS + `'/>`)); err != nil {
		return err
	}
	tc := tls.Server(in.st.conn, s.srvTLS)
	if err := tc.HandshakeContext(in.ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	in.mu.Lock()
	in.secure = true
	in.certs = tc.ConnectionState().PeerCertificates
	in.mu.Unlock()
	in.st.reset(tc)
	return nil
}

func (in *inStream) saslExternal(el *node) (bool, error) {
	s := in.srv
	fail := func(cond, text string) (bool, error) {
		var b bytes.Buffer
		b.WriteString(`<failure xmlns='` + NSSASL + `'><` + cond + `/>`)
		if text != "" {
			b.WriteString(`<text xml:lang='en'>`)
			escapeAttr(&b, text)
			b.WriteString(`</text>`)
		}
		b.WriteString(`</failure>`)
		in.log("xmpp stream refused", "reason", "SASL EXTERNAL: "+cond+": "+text)
		return false, in.st.write(b.Bytes())
	}
	in.mu.Lock()
	remote, local, offered, certErr := in.remote, in.local, in.secure && !in.sasl && in.remote != "", in.certErr
	in.mu.Unlock()
	if el.attr("mechanism") != "EXTERNAL" {
		return fail("invalid-mechanism", "only EXTERNAL is offered")
	}
	if !offered || certErr != nil {
		why := "EXTERNAL needs TLS and a stream 'from'"
		if certErr != nil {
			why = certErr.Error()
		}
		return fail("not-authorized", why)
	}
	authz := remote
	if t := strings.TrimSpace(el.Text); t != "" && t != "=" {
		b, err := base64.StdEncoding.DecodeString(t)
		if err != nil {
			return fail("incorrect-encoding", "authzid is not base64")
		}
		authz = strings.ToLower(string(b))
	}
	if authz != remote {
		return fail("invalid-authzid", fmt.Sprintf("authzid %s differs from the stream 'from' %s", authz, remote))
	}
	if _, err := s.pol.mode(remote); err != nil {
		return fail("not-authorized", err.Error())
	}
	if err := in.st.write([]byte(`<success xmlns='` + NSSASL + `'/>`)); err != nil {
		return false, err
	}
	in.mu.Lock()
	in.sasl = true
	in.authed[pair{local, remote}] = "sasl-external"
	in.mu.Unlock()
	in.authenticated(pair{local, remote}, "sasl-external")
	in.st.reset(in.st.conn)
	return true, nil
}

func (in *inStream) authenticated(p pair, method string) {
	in.st.setReadDeadline(time.Now().Add(in.srv.cfg.IdleTimeout))
	in.log("xmpp stream authenticated", "pair", p.remote+"->"+p.local, "auth", method)
}

// dbResult is the receiving server's side of XEP-0220 §2.2.1.
func (in *inStream) dbResult(el *node) error {
	s := in.srv
	if el.hasAttr("type") {
		return streamErr(SECUnsupportedStanzaType, "db:result type='%s' on an inbound stream is an unsolicited dialback response (XEP-0220 §4.1)", el.attr("type"))
	}
	from, to, key := strings.ToLower(el.attr("from")), strings.ToLower(el.attr("to")), strings.TrimSpace(el.Text)
	if from == "" || to == "" {
		return streamErr(SECImproperAddressing, "db:result needs 'from' and 'to' (found from=%q to=%q)", from, to)
	}
	if !s.serves(to) {
		return in.dbError("result", to, from, "", CondItemNotFound, "this gateway does not serve "+to)
	}
	if key == "" {
		return in.dbError("result", to, from, "", CondBadRequest, "db:result without a key")
	}
	if s.serves(from) {
		in.log("xmpp dialback refused", "pair", from+"->"+to, "reason", "sender claims one of our own domains")
		return in.dbError("result", to, from, "", CondForbidden, from+" is a domain of this gateway")
	}
	mode, err := s.pol.mode(from)
	if err != nil {
		in.log("xmpp dialback refused", "pair", from+"->"+to, "reason", err.Error())
		return in.dbError("result", to, from, "", CondForbidden, err.Error())
	}
	p := pair{to, from}
	in.mu.Lock()
	secure, certErr, id := in.secure, in.certErr, in.id
	if in.remote != from && secure {
		certErr = s.verifyPeer(in.certs, from)
	}
	_, done := in.authed[p]
	busy := in.pending[p]
	full := len(in.pending) >= maxPendingDialback
	if !done && !busy && !full {
		in.pending[p] = true
	}
	in.mu.Unlock()
	switch {
	case needsTLS(mode) && !secure:
		in.log("xmpp dialback refused", "pair", from+"->"+to, "reason", "TLS required by xmpp.federation auth "+mode)
		in.unpend(p)
		return in.dbError("result", to, from, "", CondPolicyViolation, fmt.Sprintf("%s must use TLS before dialback (auth %s)", from, mode))
	case needsValidCert(mode) && (!secure || certErr != nil):
		in.log("xmpp dialback refused", "pair", from+"->"+to, "reason", fmt.Sprintf("certificate required: %v", certErr))
		in.unpend(p)
		return in.dbError("result", to, from, "", CondNotAuthorized, fmt.Sprintf("%s needs a certificate valid for its domain (auth tls): %v", from, certErr))
	case done:
		return in.st.write(dbAnswer("result", to, from, "", "valid"))
	case busy:
		return nil // a verification for this pair is already running
	case full:
		return in.dbError("result", to, from, "", CondResourceConstraint, "too many dialback requests in flight")
	}
	if !s.add() {
		in.unpend(p)
		return streamErr(SECSystemShutdown, "gateway shutting down")
	}
	go func() {
		defer s.wg.Done()
		in.finishResult(p, id, key)
	}()
	return nil
}

func (in *inStream) unpend(p pair) {
	in.mu.Lock()
	delete(in.pending, p)
	in.mu.Unlock()
}

// finishResult asks the authoritative server and answers the initiator.
func (in *inStream) finishResult(p pair, id, key string) {
	s := in.srv
	ctx, cancel := context.WithTimeout(in.ctx, s.cfg.NegotiationTimeout)
	defer cancel()
	valid, derr := s.verifyKey(ctx, p.local, p.remote, id, key)
	in.mu.Lock()
	delete(in.pending, p)
	if valid {
		in.authed[p] = "dialback"
	}
	in.mu.Unlock()
	switch {
	case derr != nil:
		s.dialbackDone("in", "error")
		in.log("xmpp dialback failed", "pair", p.remote+"->"+p.local, "reason", derr.Error())
		in.dbError("result", p.local, p.remote, "", derr.Condition, derr.Text)
	case valid:
		s.dialbackDone("in", "valid")
		if in.st.write(dbAnswer("result", p.local, p.remote, "", "valid")) == nil {
			in.authenticated(p, "dialback")
		}
	default:
		// XEP-0220 §2.2.1: log, answer invalid and close the stream.
		s.dialbackDone("in", "invalid")
		in.log("xmpp stream refused", "pair", p.remote+"->"+p.local, "reason", "dialback key invalid: the authoritative server of "+p.remote+" did not confirm it (spoofed sender?)")
		in.st.write(dbAnswer("result", p.local, p.remote, "", "invalid"))
		in.st.close()
	}
}

// dbVerify is the authoritative server's side (XEP-0220 §2.2.2).
func (in *inStream) dbVerify(el *node) error {
	s := in.srv
	if el.hasAttr("type") {
		return streamErr(SECUnsupportedStanzaType, "db:verify type='%s' on an inbound stream is an unsolicited dialback response (XEP-0220 §4.1)", el.attr("type"))
	}
	from, to, id := strings.ToLower(el.attr("from")), strings.ToLower(el.attr("to")), el.attr("id")
	if from == "" || to == "" || id == "" {
		return streamErr(SECImproperAddressing, "db:verify needs 'from', 'to' and 'id' (found from=%q to=%q id=%q)", from, to, id)
	}
	if !s.serves(to) {
		return in.dbError("verify", to, from, id, CondItemNotFound, "this gateway does not serve "+to)
	}
	typ := "invalid"
	if s.keys.valid(el.Text, from, to, id) {
		typ = "valid"
	}
	in.log("xmpp dialback verify answered", "pair", to+"->"+from, "id", id, "result", typ)
	return in.st.write(dbAnswer("verify", to, from, id, typ))
}

// dbRequest is a db:result or db:verify carrying a key.
func dbRequest(name, from, to, id, key string) []byte {
	a := dbAnswer(name, from, to, id, "")
	var b bytes.Buffer
	b.Write(a[:len(a)-len(" type=''/>")])
	b.WriteByte('>')
	escapeAttr(&b, key)
	b.WriteString("</db:" + name + ">")
	return b.Bytes()
}

func dbAnswer(name, from, to, id, typ string) []byte {
	var b bytes.Buffer
	b.WriteString("<db:" + name + " from='")
	escapeAttr(&b, from)
	b.WriteString("' to='")
	escapeAttr(&b, to)
	if id != "" {
		b.WriteString("' id='")
		escapeAttr(&b, id)
	}
	b.WriteString("' type='" + typ + "'/>")
	return b.Bytes()
}

// dbError sends a dialback error (XEP-0220 §2.4); it does not end the stream.
func (in *inStream) dbError(name, from, to, id, cond, text string) error {
	a := dbAnswer(name, from, to, id, "error")
	var b bytes.Buffer
	b.Write(a[:len(a)-2])
	b.WriteByte('>')
	(&Error{Type: ErrorTypeCancel, Condition: cond, Text: text}).appendXML(&b)
	b.WriteString("</db:" + name + ">")
	return in.st.write(b.Bytes())
}

// stanza enforces RFC 6120 §4.6/§13.7.1.3: the sender's domain must be
// authenticated on this stream for the recipient's domain, which must be
// ours (no relaying).
func (in *inStream) stanza(el *node) error {
	s := in.srv
	st, err := stanzaFromElement(el)
	if err != nil {
		return err
	}
	if !in.isAuthenticated() {
		return streamErr(SECNotAuthorized, "<%s/> before the stream was authenticated", st.Name)
	}
	if st.From.Domainpart() == "" || st.To.Domainpart() == "" {
		return streamErr(SECImproperAddressing, "<%s/> without 'from' or 'to'", st.Name)
	}
	to, from := strings.ToLower(st.To.Domainpart()), strings.ToLower(st.From.Domainpart())
	if !s.serves(to) {
		return streamErr(SECHostUnknown, "<%s to='%s'>: this gateway serves only its SIP domains and relays nothing", st.Name, st.To)
	}
	in.mu.Lock()
	_, ok := in.authed[pair{to, from}]
	in.mu.Unlock()
	if !ok {
		return streamErr(SECInvalidFrom, "<%s from='%s'>: %s is not authenticated on this stream for %s", st.Name, st.From, from, to)
	}
	in.st.setReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
	s.deliver(in.ctx, st)
	return nil
}
