package xmpp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xgw-gateway/xgw/internal/resolve"
)

// outConn is a stream we initiated (outbound or verify), negotiated up to
// the point where authentication can start.
type outConn struct {
	srv           *Server
	st            *stream
	dir           string // "out" or "verify"
	local, remote string
	peer          string
	hdr           *header
	feats         *node // nil when the peer did not send features (pre-1.0)
	secure        bool
	certs         []*x509.Certificate
	certErr       error // verifyPeer(certs, remote)

	mu     sync.Mutex // guards method
	method string
}

func (oc *outConn) info() StreamInfo {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	si := StreamInfo{Direction: oc.dir, Peer: oc.peer, Local: oc.local, Remote: oc.remote, TLS: oc.secure,
		PeerCertValid: oc.secure && oc.certErr == nil, Auth: oc.method}
	if oc.method != "" {
		si.Authenticated = []string{oc.local + "->" + oc.remote}
	}
	return si
}

func (oc *outConn) shutdown() { oc.st.close() }

func (oc *outConn) log(msg string, args ...any) {
	oc.srv.log.Info(msg, append([]any{"dir", oc.dir, "peer", oc.peer, "local", oc.local, "remote", oc.remote}, args...)...)
}

// target is one place a remote domain's s2s service may be reached.
type target struct {
	host      string
	port      uint16
	directTLS bool
}

// targets resolves remote per RFC 6120 §3.2 and XEP-0368: direct-TLS SRV
// records first, then _xmpp-server._tcp, each in RFC 2782 order, and the
// domain itself on 5269 when neither exists.
func (s *Server) targets(ctx context.Context, remote string) ([]target, *Error) {
	r := s.cfg.Resolver
	if r == nil {
		return nil, &Error{Type: ErrorTypeCancel, Condition: CondRemoteServerNotFound, Text: "no DNS resolver configured"}
	}
	var out []target
	notFound, notOffered := 0, 0
	var lastErr error
	for _, svc := range []struct {
		name string
		tls  bool
	}{{"xmpps-server", true}, {"xmpp-server", false}} {
		recs, err := r.SRV(ctx, svc.name, "tcp", remote)
		switch {
		case resolve.IsNotFound(err):
			notFound++
			continue
		case err != nil:
			lastErr = err
			continue
		case resolve.NotOffered(recs):
			notOffered++
			continue
		}
		for _, rec := range recs {
			out = append(out, target{host: strings.TrimSuffix(rec.Target, "."), port: rec.Port, directTLS: svc.tls})
		}
	}
	switch {
	case len(out) > 0:
		return out, nil
	case notFound+notOffered == 2 && notOffered > 0:
		return nil, &Error{Type: ErrorTypeCancel, Condition: CondRemoteServerNotFound, Text: remote + " says by SRV '.' that it offers no XMPP server-to-server service"}
	case notFound == 2:
		return []target{{host: remote, port: 5269}}, nil
	}
	return nil, &Error{Type: ErrorTypeWait, Condition: CondRemoteServerTimeout, Text: fmt.Sprintf("SRV lookup for %s failed: %v", remote, lastErr)}
}

// connect dials remote and opens a stream from local: TCP (or direct
// TLS), stream header, STARTTLS when offered (required when needTLS), and
// the features that follow. The error's condition suits a dialback error
// (XEP-0220 §2.4) and a bounce (RFC 6120 §8.3.3).
func (s *Server) connect(ctx context.Context, dir, local, remote string, needTLS bool) (*outConn, *Error) {
	ts, e := s.targets(ctx, remote)
	if e != nil {
		return nil, e
	}
	var conn net.Conn
	var direct bool
	var lastErr error
	for _, t := range ts {
		conn, lastErr = s.dialTarget(ctx, t, local, remote)
		if lastErr == nil {
			direct = t.directTLS
			break
		}
	}
	if conn == nil {
		cond := CondRemoteConnFailed
		switch {
		case isTimeout(lastErr):
			cond = CondRemoteServerTimeout
		case resolve.IsNotFound(lastErr):
			cond = CondRemoteServerNotFound
		}
		return nil, &Error{Type: ErrorTypeWait, Condition: cond, Text: fmt.Sprintf("could not connect to %s: %v", remote, lastErr)}
	}
	oc := &outConn{srv: s, dir: dir, local: local, remote: remote, peer: conn.RemoteAddr().String(),
		st: newStream(conn, s.cfg.MaxStanzaSize, writeTimeout)}
	oc.st.traceAs(s.cfg.Tracer, oc.peer, local, remote, true)
	if direct {
		oc.afterTLS(conn.(*tls.Conn))
	}
	conn.SetDeadline(time.Now().Add(s.cfg.NegotiationTimeout))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := oc.open(); err != nil {
		oc.st.close()
		return nil, oc.classify(err)
	}
	if !oc.secure && oc.feats != nil && oc.feats.child(NSTLS, "starttls") != nil {
		if err := oc.startTLS(ctx); err != nil {
			oc.st.close()
			return nil, oc.classify(err)
		}
	}
	if needTLS && !oc.secure {
		oc.st.close()
		return nil, &Error{Type: ErrorTypeCancel, Condition: CondPolicyViolation, Text: fmt.Sprintf("%s does not offer TLS, which xmpp.federation requires for it", remote)}
	}
	return oc, nil
}

func (s *Server) dialTarget(ctx context.Context, t target, local, remote string) (net.Conn, error) {
	addrs, err := s.cfg.Resolver.Addrs(ctx, t.host)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, a := range addrs {
		dctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
		addr := net.JoinHostPort(a.String(), strconv.Itoa(int(t.port)))
		var conn net.Conn
		if s.cfg.Dial != nil {
			conn, err = s.cfg.Dial(dctx, "tcp", addr)
		} else {
			var d net.Dialer
			conn, err = d.DialContext(dctx, "tcp", addr)
		}
		if err == nil && t.directTLS {
			tc := tls.Client(conn, s.clientTLS(local, remote, true))
			if err = tc.HandshakeContext(dctx); err != nil {
				conn.Close()
			} else {
				conn = tc
			}
		}
		cancel()
		if err == nil {
			return conn, nil
		}
		lastErr = fmt.Errorf("%s (%s): %w", addr, t.host, err)
	}
	return nil, lastErr
}

// open sends our header and reads the peer's header and features.
func (oc *outConn) open() error {
	if err := oc.st.sendHeader(oc.local, oc.remote, ""); err != nil {
		return err
	}
	h, err := oc.st.readHeader()
	if err != nil {
		return err
	}
	oc.hdr = h
	oc.feats = nil
	if h.Version == "" {
		return nil
	}
	el, err := oc.next()
	if err != nil {
		return err
	}
	if el.Name != nameFeatures {
		return streamErr(SECNotWellFormed, "expected <stream:features/>, found %s", qname(el))
	}
	oc.feats = el
	return nil
}

// next reads an element, turning a peer's <stream:error/> into an error.
func (oc *outConn) next() (*node, error) {
	el, err := oc.st.next()
	if err != nil {
		return nil, err
	}
	if el.Name == nameStreamErr {
		return nil, parseStreamError(el)
	}
	return el, nil
}

func (oc *outConn) startTLS(ctx context.Context) error {
	if err := oc.st.write([]byte(`<starttls xmlns='` + NSTLS + `'/>`)); err != nil {
		return err
	}
	el, err := oc.next()
	if err != nil {
		return err
	}
	if el.Name != nameProceed {
		return fmt.Errorf("STARTTLS refused by %s: %s", oc.remote, elementString(el))
	}
	tc := tls.Client(oc.st.conn, oc.srv.clientTLS(oc.local, oc.remote, false))
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake with %s: %w", oc.remote, err)
	}
	oc.afterTLS(tc)
	oc.st.reset(tc)
	return oc.open()
}

func (oc *outConn) afterTLS(tc *tls.Conn) {
	oc.mu.Lock()
	defer oc.mu.Unlock()
	oc.secure = true
	oc.certs = tc.ConnectionState().PeerCertificates
	oc.certErr = oc.srv.verifyPeer(oc.certs, oc.remote)
}

// classify maps a negotiation failure to a stanza/dialback error condition.
func (oc *outConn) classify(err error) *Error {
	var se *StreamError
	if errors.As(err, &se) && se.Remote && (se.Condition == SECHostUnknown || se.Condition == "host-gone") {
		return &Error{Type: ErrorTypeCancel, Condition: CondRemoteServerNotFound, Text: fmt.Sprintf("%s: %v", oc.remote, err)}
	}
	if isTimeout(err) || errors.As(err, &se) && se.Condition == SECConnectionTimeout {
		return &Error{Type: ErrorTypeWait, Condition: CondRemoteServerTimeout, Text: fmt.Sprintf("%s did not answer in time: %v", oc.remote, err)}
	}
	return &Error{Type: ErrorTypeWait, Condition: CondRemoteServerTimeout, Text: fmt.Sprintf("stream to %s failed: %v", oc.remote, err)}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// verifyKey is the receiving server asking the authoritative server of
// remote whether key is valid for (local, remote, id): a separate
// connection that never authenticates (XEP-0220 §2.1.2).
func (s *Server) verifyKey(ctx context.Context, local, remote, id, key string) (bool, *Error) {
	oc, e := s.connect(ctx, "verify", local, remote, false)
	if e != nil {
		if e.Condition == CondRemoteServerTimeout {
			e.Condition = CondRemoteConnFailed
		}
		return false, e
	}
	defer oc.st.close()
	if !s.track(oc, "") {
		return false, &Error{Type: ErrorTypeWait, Condition: CondResourceConstraint, Text: "too many streams"}
	}
	defer s.untrack(oc, "")
	stop := context.AfterFunc(ctx, func() { oc.st.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	oc.log("xmpp stream opened", "purpose", "dialback verify", "id", id)
	if err := oc.st.write(dbRequest("verify", local, remote, id, key)); err != nil {
		return false, oc.classify(err)
	}
	for {
		el, err := oc.next()
		if err != nil {
			// XEP-0220 §2.4: remote-server-timeout when the authoritative
			// server closed or stalled without answering.
			e := oc.classify(err)
			oc.log("xmpp stream closed", "purpose", "dialback verify", "reason", err.Error())
			return false, e
		}
		if el.Name != nameDBVerify || el.attr("id") != id || !strings.EqualFold(el.attr("from"), remote) || !strings.EqualFold(el.attr("to"), local) {
			continue // not our answer (XEP-0220 §3.1: match from, to and id)
		}
		switch el.attr("type") {
		case "valid":
			oc.log("xmpp stream closed", "purpose", "dialback verify", "result", "valid")
			return true, nil
		case "invalid":
			oc.log("xmpp stream closed", "purpose", "dialback verify", "result", "invalid")
			return false, nil
		default:
			oc.log("xmpp stream closed", "purpose", "dialback verify", "result", "error", "answer", elementString(el))
			return false, &Error{Type: ErrorTypeCancel, Condition: CondRemoteServerNotFound, Text: "the authoritative server of " + remote + " answered with an error: " + elementString(el)}
		}
	}
}
