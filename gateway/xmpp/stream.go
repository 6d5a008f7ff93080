package xmpp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xgw-gateway/xgw/gateway/trace"
)

// errTooBig is returned by limitReader when a stanza would exceed the limit.
var errTooBig = errors.New("stanza too large")

// errStreamEnd is returned by next when the peer closed its stream.
var errStreamEnd = errors.New("stream closed by peer")

// limitReader refuses to read past limit bytes in total. The stream moves
// limit forward after each top-level element, so one element can never
// make the decoder buffer more than the stanza limit (plus the bufio
// read-ahead the decoder keeps, 4 KiB).
type limitReader struct {
	r     io.Reader
	read  int64
	limit int64
	// With tee, raw keeps the bytes read from offset base on, so that the
	// trace shows what the peer sent, byte for byte.
	tee  bool
	raw  []byte
	base int64
}

// span returns the raw bytes from offset from to offset to, valid until
// the next forget or Read.
func (l *limitReader) span(from, to int64) []byte {
	if from >= l.base && to >= from && to-l.base <= int64(len(l.raw)) {
		return l.raw[from-l.base : to-l.base]
	}
	return nil
}

// forget drops the raw bytes before offset to.
func (l *limitReader) forget(to int64) {
	if k := to - l.base; k > 0 && k <= int64(len(l.raw)) {
		n := copy(l.raw, l.raw[k:])
		l.raw = l.raw[:n]
		l.base = to
	}
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.read >= l.limit {
		return 0, errTooBig
	}
	if rest := l.limit - l.read; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	if l.tee {
		l.raw = append(l.raw, p[:n]...)
	}
	return n, err
}

// stream is one XML stream over a connection, either direction.
type stream struct {
	conn net.Conn
	max  int64
	lr   *limitReader
	dec  *xml.Decoder

	wmu          sync.Mutex
	writeTimeout time.Duration
	headerSent   bool
	closed       bool

	// tr is nil unless XMPP is traced; tmeta labels the records.
	tr        *trace.Tracer
	tmeta     atomic.Pointer[trace.Event]
	initiator bool // the stream ID is the peer's (its header's id)
}

// traceAs turns tracing on for this stream (before anything is read):
// peer and, on streams we initiate, our and the peer's domain.
func (s *stream) traceAs(tr *trace.Tracer, peer, local, remote string, initiator bool) {
	if !tr.On(trace.XMPP) {
		return
	}
	s.tr, s.initiator = tr, initiator
	s.lr.tee = true
	s.tmeta.Store(&trace.Event{Proto: trace.XMPP, Peer: peer, LocalAddr: s.conn.LocalAddr().String(), Local: local, Remote: remote})
}

// traceLabel sets the stream ID and domains of later records.
func (s *stream) traceLabel(id, local, remote string) {
	if s.tr == nil {
		return
	}
	m := *s.tmeta.Load()
	m.Stream, m.Local, m.Remote = id, local, remote
	s.tmeta.Store(&m)
}

func (s *stream) trace(dir trace.Dir, b []byte) {
	ev := *s.tmeta.Load()
	ev.Dir, ev.Msg = dir, b
	s.tr.Trace(ev)
}

// traceIn records what the decoder consumed from offset from on.
func (s *stream) traceIn(from int64) {
	if s.tr != nil {
		to := s.dec.InputOffset()
		s.trace(trace.In, s.lr.span(from, to)) // Trace copies it
		s.lr.forget(to)
	}
}

func newStream(conn net.Conn, maxStanza int, writeTimeout time.Duration) *stream {
	s := &stream{conn: conn, max: int64(maxStanza), writeTimeout: writeTimeout}
	s.reset(conn)
	return s
}

// reset starts a new XML document on conn (after STARTTLS or SASL, RFC 6120
// §4.3.3): a fresh decoder and byte budget.
func (s *stream) reset(conn net.Conn) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.conn = conn
	s.lr = &limitReader{r: conn, limit: s.max, tee: s.tr != nil}
	s.dec = newDecoder(s.lr)
	s.headerSent = false
}

// setReadDeadline may be called from any goroutine.
func (s *stream) setReadDeadline(t time.Time) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.conn.SetReadDeadline(t)
}

// header is the peer's stream header.
type header struct {
	From, To, ID, Version, Lang string
	// Dialback is true when the header declares xmlns:db (XEP-0220 §2.4.1).
	Dialback bool
}

// readHeader reads the XML declaration (optional) and the stream header,
// checking namespaces (RFC 6120 §4.8) and version (§4.7.5).
func (s *stream) readHeader() (*header, error) {
	for first := true; ; first = false {
		tok, err := s.dec.Token()
		if err != nil {
			return nil, s.readErr(err)
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if t.Target != "xml" || !first {
				return nil, streamErr(SECRestrictedXML, "processing instruction <?%s?> before the stream header", t.Target)
			}
			if enc := procInstAttr(t.Inst, "encoding"); enc != "" && !strings.EqualFold(enc, "utf-8") {
				return nil, streamErr(SECUnsupportedEncoding, "encoding %q, expected UTF-8", enc)
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, streamErr(SECNotWellFormed, "text before the stream header")
			}
		case xml.Comment:
			return nil, streamErr(SECRestrictedXML, "comment before the stream header")
		case xml.Directive:
			return nil, streamErr(SECRestrictedXML, "DTD or directive before the stream header; XMPP forbids them (RFC 6120 §11.1)")
		case xml.StartElement:
			h, err := parseHeader(t)
			if err == nil && s.tr != nil {
				if m := *s.tmeta.Load(); s.initiator {
					s.traceLabel(h.ID, m.Local, m.Remote)
				} else { // the peer's header names us in 'to', itself in 'from'
					s.traceLabel(m.Stream, strings.ToLower(h.To), strings.ToLower(h.From))
				}
				s.traceIn(0)
			}
			return h, err
		default:
			return nil, streamErr(SECNotWellFormed, "unexpected %T before the stream header", tok)
		}
	}
}

func procInstAttr(inst []byte, name string) string {
	s := string(inst)
	i := strings.Index(s, name+"=")
	if i < 0 || i+len(name)+2 > len(s) {
		return ""
	}
	s = s[i+len(name)+1:]
	q := s[0]
	if j := strings.IndexByte(s[1:], q); j >= 0 {
		return s[1 : j+1]
	}
	return ""
}

func parseHeader(t xml.StartElement) (*header, error) {
	if t.Name.Local != "stream" {
		return nil, streamErr(SECNotWellFormed, "first element <%s/>, expected <stream:stream>", t.Name.Local)
	}
	if t.Name.Space != NSStream {
		return nil, streamErr(SECInvalidNamespace, "stream element in namespace %q, expected %s", t.Name.Space, NSStream)
	}
	h := &header{}
	defaultNS := ""
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			defaultNS = a.Value
		case a.Name.Space == "xmlns" && a.Name.Local == "db":
			h.Dialback = a.Value == NSDialback
		case a.Name.Space == "":
			switch a.Name.Local {
			case "from":
				h.From = a.Value
			case "to":
				h.To = a.Value
			case "id":
				h.ID = a.Value
			case "version":
				h.Version = a.Value
			}
		case a.Name.Local == "lang":
			h.Lang = a.Value
		}
	}
	if defaultNS != NSServer {
		return nil, streamErr(SECInvalidNamespace, "content namespace %q, expected %s (server-to-server)", defaultNS, NSServer)
	}
	if h.Version != "" {
		major, _, _ := strings.Cut(h.Version, ".")
		if major != "1" && major != "0" {
			return nil, streamErr(SECUnsupportedVersion, "version %q, expected 1.0", h.Version)
		}
	}
	return h, nil
}

// next reads the next top-level element, skipping whitespace keepalives.
// It returns errStreamEnd when the peer sends </stream:stream>.
func (s *stream) next() (*node, error) {
	for {
		from := s.dec.InputOffset()
		tok, err := s.dec.Token()
		if err != nil {
			return nil, s.readErr(err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, streamErr(SECNotWellFormed, "text directly inside the stream")
			}
			s.lr.limit = s.dec.InputOffset() + s.max
			if s.tr != nil {
				s.lr.forget(s.dec.InputOffset()) // whitespace keepalives are not traced
			}
		case xml.EndElement:
			s.traceIn(from)
			return nil, errStreamEnd
		case xml.StartElement:
			n, err := readElement(s.dec, t)
			if err != nil {
				return nil, s.readErr(err)
			}
			s.lr.limit = s.dec.InputOffset() + s.max
			s.traceIn(from)
			return n, nil
		case xml.Comment:
			return nil, streamErr(SECRestrictedXML, "comment in the stream")
		case xml.ProcInst:
			return nil, streamErr(SECRestrictedXML, "processing instruction <?%s?> in the stream", t.Target)
		case xml.Directive:
			return nil, streamErr(SECRestrictedXML, "DTD or directive in the stream; XMPP forbids them (RFC 6120 §11.1)")
		}
	}
}

// readErr maps a read or parse failure to the stream error to send, or
// returns it unchanged when the connection itself failed.
func (s *stream) readErr(err error) error {
	var se *StreamError
	var syn *xml.SyntaxError
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, errTooBig):
		return streamErr(SECPolicyViolation, "stanza larger than the limit of %d bytes", s.max)
	case errors.Is(err, errRestricted):
		return streamErr(SECRestrictedXML, "%v", err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return streamErr(SECConnectionTimeout, "no data within the deadline")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF):
		return err
	case errors.As(err, &syn):
		if strings.Contains(syn.Msg, "unexpected EOF") {
			return io.ErrUnexpectedEOF
		}
		return streamErr(SECNotWellFormed, "%s", syn.Msg)
	case strings.HasPrefix(err.Error(), "xml: "):
		return streamErr(SECNotWellFormed, "%s", strings.TrimPrefix(err.Error(), "xml: "))
	}
	return err
}

// write sends raw XML, bounded by the write timeout.
func (s *stream) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.writeLocked(b)
}

// writeCtx is write bounded also by ctx's deadline and cancellation.
func (s *stream) writeCtx(ctx context.Context, b []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	dl := time.Now().Add(s.writeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	s.conn.SetWriteDeadline(dl)
	_, err := s.conn.Write(b)
	if s.tr != nil && err == nil {
		s.trace(trace.Out, b)
	}
	return err
}

func (s *stream) writeLocked(b []byte) error {
	if s.closed {
		return net.ErrClosed
	}
	if s.writeTimeout > 0 {
		s.conn.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	}
	_, err := s.conn.Write(b)
	if s.tr != nil && err == nil {
		s.trace(trace.Out, b)
	}
	return err
}

// openHeader returns our stream header. id is empty on initiated streams.
func openHeader(from, to, id string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version='1.0'?><stream:stream xmlns='` + NSServer + `' xmlns:stream='` + NSStream + `' xmlns:db='` + NSDialback + `'`)
	for _, a := range [][2]string{{"from", from}, {"to", to}, {"id", id}} {
		if a[1] != "" {
			b.WriteString(" " + a[0] + "='")
			escapeAttr(&b, a[1])
			b.WriteByte('\'')
		}
	}
	b.WriteString(` version='1.0'>`)
	return b.Bytes()
}

// sendHeader writes our header once per (re)started stream.
func (s *stream) sendHeader(from, to, id string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.headerSent = true
	return s.writeLocked(openHeader(from, to, id))
}

// fail sends a stream error (after a header when none was sent yet, RFC
// 6120 §4.9.1.2), closes the stream and the connection.
func (s *stream) fail(se *StreamError, from string) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return
	}
	var b bytes.Buffer
	if !s.headerSent {
		b.Write(openHeader(from, "", newStreamID()))
	}
	b.Write(se.bytes())
	b.WriteString(`</stream:stream>`)
	s.writeLocked(b.Bytes())
	s.closed = true
	s.conn.Close()
}

// close ends the stream politely and closes the connection.
func (s *stream) close() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return
	}
	if s.headerSent {
		s.writeTimeout = min(s.writeTimeout, time.Second)
		s.writeLocked([]byte(`</stream:stream>`))
	}
	s.closed = true
	s.conn.Close()
}

func newStreamID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// elementString renders a node for logs and errors, bounded.
func elementString(n *node) string {
	var b bytes.Buffer
	n.write(&b, NSServer)
	s := b.String()
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func qname(n *node) string { return fmt.Sprintf("{%s}%s", n.Name.Space, n.Name.Local) }

// Top-level element names the negotiators switch on.
var (
	nameStartTLS  = xml.Name{Space: NSTLS, Local: "starttls"}
	nameProceed   = xml.Name{Space: NSTLS, Local: "proceed"}
	nameSASLAuth  = xml.Name{Space: NSSASL, Local: "auth"}
	nameDBResult  = xml.Name{Space: NSDialback, Local: "result"}
	nameDBVerify  = xml.Name{Space: NSDialback, Local: "verify"}
	nameFeatures  = xml.Name{Space: NSStream, Local: "features"}
	nameStreamErr = xml.Name{Space: NSStream, Local: "error"}
)
