package sip

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xgw-gateway/xgw/gateway/trace"
)

// The guard sits between the sockets and sipgo's parser. It frames each
// message itself (start line, headers, Content-Length, body) under fixed
// limits, answers what it can (400, 413, 505, 513) and hands sipgo only
// complete messages that carry the headers every request needs
// (RFC 3261 §8.1.1). sipgo on its own closes a stream on a parse error
// without answering, and its size limit is a package-wide setting.

type limits struct {
	maxMsg, maxBody  int
	handshakeTimeout time.Duration
	// messageTimeout bounds the time from a message's first byte to its
	// last, so a peer cannot hold a reader with a trickle (idle time
	// between messages is not limited: the Edge keeps its connection).
	messageTimeout time.Duration
	// tr traces the replies the guard writes itself (nil: off).
	tr *trace.Tracer
}

// traceReply records an error reply the guard wrote to peer.
func (l limits) traceReply(peer net.Addr, reply []byte) {
	if l.tr.On(trace.SIP) {
		l.tr.Trace(trace.Event{Proto: trace.SIP, Dir: trace.Out, Peer: peer.String(), Msg: reply})
	}
}

func (e *Endpoint) limits() limits {
	return limits{maxMsg: e.cfg.MaxMessageSize, maxBody: e.cfg.MaxBodySize, handshakeTimeout: 10 * time.Second, messageTimeout: 30 * time.Second,
		tr: e.cfg.Tracer}
}

// errNotSIP: the bytes are not SIP at all; on a stream the connection ends.
var errNotSIP = errors.New("input is not SIP")

// framed is the outcome of reading one message.
type framed struct {
	msg   []byte // a complete message for sipgo, or nil
	reply []byte // a response to write back, or nil
	fatal error  // the stream cannot go on (framing lost, not SIP, I/O)
	why   string // for the log when refusing
}

// Header bits frame tracks, to check mandatory headers without a map.
const (
	hVia = 1 << iota
	hFrom
	hTo
	hCallID
	hCSeq
	hContentLength
	hOther
	hMandatory = hVia | hFrom | hTo | hCallID | hCSeq
)

var mandatoryNames = []struct {
	bit  int
	name string
}{{hVia, "via"}, {hFrom, "from"}, {hTo, "to"}, {hCallID, "call-id"}, {hCSeq, "cseq"}}

// headerBit classifies a header name, long or compact form (RFC 3261 §7.3.3).
func headerBit(name []byte) int {
	switch len(name) {
	case 1:
		switch name[0] | 0x20 {
		case 'v':
			return hVia
		case 'f':
			return hFrom
		case 't':
			return hTo
		case 'i':
			return hCallID
		case 'l':
			return hContentLength
		}
	case 2:
		if bytes.EqualFold(name, []byte("to")) {
			return hTo
		}
	case 3:
		if bytes.EqualFold(name, []byte("via")) {
			return hVia
		}
	case 4:
		switch {
		case bytes.EqualFold(name, []byte("from")):
			return hFrom
		case bytes.EqualFold(name, []byte("cseq")):
			return hCSeq
		}
	case 7:
		if bytes.EqualFold(name, []byte("call-id")) {
			return hCallID
		}
	case 14:
		if bytes.EqualFold(name, []byte("content-length")) {
			return hContentLength
		}
	}
	return hOther
}

// frame reads one message from r. stream says whether Content-Length
// delimits the body (TCP/TLS) or the datagram does (UDP). The message is
// built in buf's storage, which the caller reuses once it is consumed.
func frame(r *bufio.Reader, lim limits, stream bool, buf []byte) framed {
	head, err := readLine(r, buf[:0], lim.maxMsg)
	if err != nil {
		return framed{fatal: err}
	}
	start := string(bytes.TrimRight(head, "\r\n"))
	isReq, method, bad := classifyStart(start)
	if bad != "" {
		return framed{fatal: fmt.Errorf("%w: start line %q", errNotSIP, clip(start)), why: bad}
	}
	var (
		clen      = -1
		clenBad   bool
		seen      int
		malformed bool
		cseqOK    = true
		copyLines [][2]int // spans of head to copy into an error reply
	)
	reply := func(status int, reason string) []byte { return errorReply(isReq, status, reason, head, copyLines) }
	for {
		from := len(head)
		head, err = readLine(r, head, lim.maxMsg)
		if errors.Is(err, errLineTooLong) {
			return framed{reply: reply(513, "Message Too Large"), fatal: err, why: "header section over the size limit"}
		}
		if err != nil {
			return framed{fatal: err}
		}
		text := bytes.TrimRight(head[from:], "\r\n")
		if len(text) == 0 {
			break
		}
		if text[0] == ' ' || text[0] == '\t' {
			continue // folded continuation of the previous header
		}
		colon := bytes.IndexByte(text, ':')
		if colon < 0 {
			malformed = true
			continue
		}
		bit := headerBit(bytes.TrimSpace(text[:colon]))
		value := bytes.TrimSpace(text[colon+1:])
		seen |= bit
		switch bit {
		case hVia, hFrom, hTo, hCallID:
			copyLines = append(copyLines, [2]int{from, from + len(text)})
		case hCSeq:
			copyLines = append(copyLines, [2]int{from, from + len(text)})
			num, m, _ := bytes.Cut(value, []byte(" "))
			n, err := strconv.ParseUint(string(num), 10, 32)
			if err != nil || n >= 1<<31 || (isReq && string(bytes.TrimSpace(m)) != method) {
				cseqOK = false
			}
		case hContentLength:
			n, err := strconv.Atoi(string(value))
			if err != nil || n < 0 {
				clenBad = true
			} else {
				clen = n
			}
		}
	}
	if clenBad {
		return framed{reply: reply(400, "Bad Content-Length"), fatal: errors.New("unparsable Content-Length"), why: "Content-Length is not a number"}
	}
	missingCL := false
	if clen < 0 {
		missingCL = stream
		clen = 0
		if !stream {
			clen = r.Buffered() // the datagram's remainder is the body
		}
	}
	if clen > lim.maxBody {
		return framed{reply: reply(413, "Request Entity Too Large"), fatal: fmt.Errorf("body of %d bytes over the limit of %d", clen, lim.maxBody), why: "body over the size limit"}
	}
	if len(head)+clen > lim.maxMsg {
		return framed{reply: reply(513, "Message Too Large"), fatal: fmt.Errorf("message of %d bytes over the limit of %d", len(head)+clen, lim.maxMsg), why: "message over the size limit"}
	}
	if !stream && clen > r.Buffered() {
		return framed{reply: reply(400, "Content-Length Beyond Datagram"), why: "Content-Length larger than the datagram"}
	}
	var msg []byte
	if missingCL {
		// RFC 3261 §18.3 makes Content-Length mandatory on streams; sipgo
		// needs it to find the end, so add the zero we assumed.
		msg = append(head[:len(head)-2], "Content-Length: 0\r\n\r\n"...)
	} else {
		msg = slices.Grow(head, clen)[:len(head)+clen]
		if _, err := io.ReadFull(r, msg[len(head):]); err != nil {
			return framed{fatal: err}
		}
	}
	switch {
	case malformed:
		return framed{reply: reply(400, "Malformed Header Line"), why: "header line without a colon"}
	case seen&hMandatory != hMandatory:
		var missing []string
		for _, m := range mandatoryNames {
			if seen&m.bit == 0 {
				missing = append(missing, m.name)
			}
		}
		return framed{reply: reply(400, "Missing "+strings.Join(missing, ", ")), why: "missing mandatory headers " + strings.Join(missing, ", ")}
	case !cseqOK:
		return framed{reply: reply(400, "Bad CSeq"), why: "CSeq is not 'number METHOD' matching the request"}
	}
	return framed{msg: msg}
}

var errLineTooLong = errors.New("header section over the size limit")

// readLine appends one line, '\n' included, to buf, which may not grow
// past max bytes.
func readLine(r *bufio.Reader, buf []byte, max int) ([]byte, error) {
	start := len(buf)
	for {
		part, err := r.ReadSlice('\n')
		if len(buf)+len(part) > max {
			return buf, errLineTooLong
		}
		buf = append(buf, part...)
		if err == nil {
			return buf, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if len(buf) > start && errors.Is(err, io.EOF) {
				return buf, io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
}

// classifyStart checks a start line: "METHOD URI SIP/2.0" or
// "SIP/2.0 CODE reason". bad says why it is not SIP.
func classifyStart(s string) (isReq bool, method, bad string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false, "", "control bytes in the start line"
		}
	}
	if rest, ok := strings.CutPrefix(s, "SIP/2.0 "); ok {
		code, _, _ := strings.Cut(rest, " ")
		if n, err := strconv.Atoi(code); err == nil && n >= 100 && n <= 699 && len(code) == 3 {
			return false, "", ""
		}
		return false, "", "bad status code"
	}
	parts := strings.Split(s, " ")
	if len(parts) != 3 || parts[2] != "SIP/2.0" || !isToken(parts[0]) || !strings.Contains(parts[1], ":") {
		return false, "", "not a SIP/2.0 request or response line"
	}
	return true, parts[0], ""
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("-.!%*_+`'~", c)) {
			return false
		}
	}
	return true
}

// errorReply builds a stateless response to a refused request (RFC 3261
// §8.2.6) from the raw header lines we could read; nil for responses.
func errorReply(isReq bool, status int, reason string, head []byte, lines [][2]int) []byte {
	if !isReq {
		return nil
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", status, reason)
	for _, l := range lines {
		b.Write(head[l[0]:l[1]])
		b.WriteString("\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.Bytes()
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// guardListener wraps each accepted stream in a guardConn.
type guardListener struct {
	net.Listener
	lim limits
	log *slog.Logger
}

func newGuardListener(ln net.Listener, lim limits, log *slog.Logger) *guardListener {
	return &guardListener{Listener: ln, lim: lim, log: log}
}

func (l *guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardConn{Conn: c, r: bufio.NewReaderSize(c, 4096), lim: l.lim, log: l.log}, nil
}

// guardConn hands sipgo one checked message at a time.
type guardConn struct {
	net.Conn
	r          *bufio.Reader
	lim        limits
	log        *slog.Logger
	pending    []byte
	buf        []byte // storage of pending, reused for the next message
	handshaken bool
}

func (c *guardConn) Read(p []byte) (int, error) {
	if !c.handshaken {
		c.handshaken = true
		if tc, ok := c.Conn.(*tls.Conn); ok {
			ctx, cancel := context.WithTimeout(context.Background(), c.lim.handshakeTimeout)
			err := tc.HandshakeContext(ctx)
			cancel()
			if err != nil {
				c.log.Debug("sip: TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
				return 0, err
			}
		}
	}
	for len(c.pending) == 0 {
		if err := c.skipKeepalive(); err != nil {
			return 0, err
		}
		if c.lim.messageTimeout > 0 {
			c.Conn.SetReadDeadline(time.Now().Add(c.lim.messageTimeout))
		}
		f := frame(c.r, c.lim, true, c.buf)
		c.Conn.SetReadDeadline(time.Time{})
		if f.msg != nil {
			c.buf = f.msg
		}
		if f.reply != nil {
			if _, err := c.Conn.Write(f.reply); err != nil {
				return 0, err
			}
			c.lim.traceReply(c.RemoteAddr(), f.reply)
		}
		if f.why != "" {
			c.log.Warn("sip: refused input", "remote", c.RemoteAddr().String(), "transport", "stream", "why", f.why, "err", f.fatal)
		}
		if f.fatal != nil {
			return 0, f.fatal
		}
		c.pending = f.msg
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// skipKeepalive consumes CRLFs between messages and answers a double-CRLF
// ping with a CRLF pong (RFC 5626 §3.5.1).
func (c *guardConn) skipKeepalive() error {
	n := 0
	for {
		b, err := c.r.Peek(1)
		if err != nil {
			return err
		}
		if b[0] != '\r' && b[0] != '\n' {
			break
		}
		c.r.ReadByte()
		n++
		if n == 4 {
			if _, err := c.Conn.Write([]byte("\r\n")); err != nil {
				return err
			}
			n = 0
		}
	}
	return nil
}

// guardPacketConn checks each datagram the same way.
type guardPacketConn struct {
	net.PacketConn
	lim     limits
	log     *slog.Logger
	buf     []byte // one datagram
	scratch []byte // the checked message, copied out before the next read
}

func newGuardPacketConn(pc net.PacketConn, lim limits, log *slog.Logger) *guardPacketConn {
	return &guardPacketConn{PacketConn: pc, lim: lim, log: log, buf: make([]byte, lim.maxMsg+1), scratch: make([]byte, 0, 2048)}
}

// ReadFrom is called by one sipgo reader goroutine only.
func (g *guardPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := g.PacketConn.ReadFrom(g.buf)
		if err != nil {
			return 0, nil, err
		}
		data := g.buf[:n]
		if len(bytes.Trim(data, "\r\n\x00")) == 0 {
			continue // keepalive
		}
		var f framed
		if n > g.lim.maxMsg {
			f = frame(bufio.NewReaderSize(bytes.NewReader(data[:g.lim.maxMsg]), g.lim.maxMsg), g.lim, false, g.scratch)
			if f.reply == nil && f.fatal == nil {
				f = framed{why: "datagram over the size limit"}
			}
		} else {
			f = frame(bufio.NewReaderSize(bytes.NewReader(data), max(n, 16)), g.lim, false, g.scratch)
		}
		if f.reply != nil {
			g.PacketConn.WriteTo(f.reply, addr)
			g.lim.traceReply(addr, f.reply)
		}
		if f.why != "" || f.fatal != nil {
			g.log.Warn("sip: refused input", "remote", addr.String(), "transport", "udp", "why", f.why, "err", f.fatal)
		}
		if f.msg == nil {
			continue
		}
		g.scratch = f.msg[:0]
		if len(f.msg) > len(p) {
			g.log.Warn("sip: datagram larger than the read buffer", "remote", addr.String(), "size", len(f.msg))
			continue
		}
		return copy(p, f.msg), addr, nil
	}
}
