package checks

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// XMPP namespaces the stream probe looks for (RFC 6120, XEP-0220).
const (
	nsStreams     = "http://etherx.jabber.org/streams"
	nsStreamsErr  = "urn:ietf:params:xml:ns:xmpp-streams"
	nsStartTLS    = "urn:ietf:params:xml:ns:xmpp-tls"
	nsDialback    = "jabber:server:dialback"
	nsDialbackFea = "urn:xmpp:features:dialback"
)

const (
	// streamReadLimit bounds what one probe reads from a peer: a stream
	// header and its features fit in a few hundred bytes, so anything
	// beyond 64 KiB is hostile or not XMPP.
	streamReadLimit = 64 << 10
	// streamFeaturesWait bounds the wait for <stream:features/> once the
	// header arrived, so a server that never sends them does not eat the
	// whole run's budget.
	streamFeaturesWait = 2 * time.Second
	// sawLimit is how much of a non-XMPP answer is quoted back.
	sawLimit = 60
)

// xmppStream is what the opening of a peer's XMPP stream told us.
type xmppStream struct {
	ID, From, Version string
	// Features reports whether <stream:features/> arrived.
	Features    bool
	StartTLS    bool
	TLSRequired bool
	// Dialback is true when the header declares xmlns:db or the features
	// list urn:xmpp:features:dialback (XEP-0220 §2.1).
	Dialback bool
	// StreamError is the condition of a <stream:error/> the peer sent
	// instead of features (e.g. "host-unknown").
	StreamError string
}

// summary describes the stream in one line for Result.Found.
func (s xmppStream) summary() string {
	var parts []string
	if s.From != "" {
		parts = append(parts, "from="+s.From)
	}
	switch {
	case s.TLSRequired:
		parts = append(parts, "STARTTLS offered (required)")
	case s.StartTLS:
		parts = append(parts, "STARTTLS offered")
	case s.Features:
		parts = append(parts, "no STARTTLS")
	default:
		parts = append(parts, "no stream features")
	}
	if s.Dialback {
		parts = append(parts, "dialback advertised")
	} else {
		parts = append(parts, "dialback not advertised")
	}
	if s.StreamError != "" {
		parts = append(parts, "stream error <"+s.StreamError+"/>")
	}
	return "XMPP stream opened (" + strings.Join(parts, ", ") + ")"
}

// streamFailKind tells apart the ways a stream probe fails; each has its
// own remedy.
type streamFailKind int

const (
	failRefused        streamFailKind = iota + 1 // RST: nothing listens
	failConnectTimeout                           // SYN unanswered: filtered or not forwarded
	failUnreachable                              // no route, host or network unreachable
	failSilent                                   // connected, but no answer before the deadline
	failClosed                                   // connected, closed without an XMPP answer
	failNotXMPP                                  // answered with something else
	failOther
)

// streamError is a failed stream probe.
type streamError struct {
	Kind streamFailKind
	Addr string
	Saw  string // quoted start of a non-XMPP answer
	Err  error
}

func (e *streamError) Error() string {
	switch e.Kind {
	case failRefused:
		return "connection to " + e.Addr + " refused"
	case failConnectTimeout:
		return "no answer to the connection attempt to " + e.Addr + " (timed out)"
	case failUnreachable:
		return e.Addr + " is unreachable: " + e.Err.Error()
	case failSilent:
		return "connected to " + e.Addr + " but no XMPP answer came before the deadline"
	case failClosed:
		return "connected to " + e.Addr + " but it closed the connection without an XMPP answer"
	case failNotXMPP:
		return e.Addr + " answered, but not with an XMPP stream: " + e.Saw
	}
	return e.Addr + ": " + e.Err.Error()
}

func (e *streamError) Unwrap() error { return e.Err }

// dialXMPPStream connects to addr (IP:PORT) and opens an XMPP
// server-to-server stream to the domain to. It returns when the peer's
// header and features arrived, the peer failed, or ctx ends.
func dialXMPPStream(ctx context.Context, d *net.Dialer, addr, to string) (xmppStream, error) {
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return xmppStream{}, &streamError{Kind: dialFailKind(err), Addr: addr, Err: err}
	}
	defer conn.Close()
	return openXMPPStream(ctx, conn, to)
}

// dialFailKind classifies a connect error by its cause, not its text.
func dialFailKind(err error) streamFailKind {
	var ne net.Error
	switch {
	case errors.Is(err, errConnRefused):
		return failRefused
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return failConnectTimeout
	case errors.Is(err, errHostUnreach), errors.Is(err, errNetUnreach):
		return failUnreachable
	}
	return failOther
}

// openXMPPStream sends our stream header on conn and reads the answer,
// at most streamReadLimit bytes, until ctx's deadline. It ends our side
// of the stream before returning; the caller closes conn.
func openXMPPStream(ctx context.Context, conn net.Conn, to string) (xmppStream, error) {
	addr := conn.RemoteAddr().String()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// A cancelled ctx without a deadline still has to unblock the read.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := io.WriteString(conn, streamHeader(to)); err != nil {
		return xmppStream{}, &streamError{Kind: failClosed, Addr: addr, Err: err}
	}
	saw := &prefixBuffer{max: sawLimit}
	dec := xml.NewDecoder(io.TeeReader(io.LimitReader(conn, streamReadLimit), saw))
	st, err := readStream(ctx, dec, conn)
	if err != nil {
		return st, classifyReadErr(err, addr, saw)
	}
	// Close our side politely; the answer does not matter.
	conn.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	io.WriteString(conn, "</stream:stream>")
	return st, nil
}

// streamHeader is the initiating server's opening tag (RFC 6120 §4.7,
// with the dialback namespace real servers declare).
func streamHeader(to string) string {
	var b strings.Builder
	b.WriteString(`<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='`)
	xml.EscapeText(&b, []byte(to))
	b.WriteString(`' version='1.0'>`)
	return b.String()
}

// errNotStream marks an answer that is well-formed XML but not a stream.
var errNotStream = errors.New("not an XMPP stream")

// readStream reads the peer's stream header and, for version 1.0
// streams, its features or stream error.
func readStream(ctx context.Context, dec *xml.Decoder, conn net.Conn) (xmppStream, error) {
	var st xmppStream
	start, err := firstElement(dec)
	if err != nil {
		return st, err
	}
	if start.Name.Space != nsStreams || start.Name.Local != "stream" {
		return st, fmt.Errorf("%w: first element <%s>", errNotStream, start.Name.Local)
	}
	for _, a := range start.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "id":
			st.ID = a.Value
		case a.Name.Space == "" && a.Name.Local == "from":
			st.From = a.Value
		case a.Name.Space == "" && a.Name.Local == "version":
			st.Version = a.Value
		case a.Name.Space == "xmlns" && a.Value == nsDialback:
			st.Dialback = true
		}
	}
	if st.Version == "" || strings.HasPrefix(st.Version, "0.") {
		return st, nil // pre-RFC 3920 streams carry no features
	}
	if err := ctx.Err(); err != nil {
		return st, nil // cancelled after the header: report what came
	}
	wait := time.Now().Add(streamFeaturesWait)
	if dl, ok := ctx.Deadline(); ok && dl.Before(wait) {
		wait = dl
	}
	conn.SetReadDeadline(wait)
	for {
		tok, err := dec.Token()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return st, nil // header only: features are optional to report
			}
			return st, err
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch {
		case el.Name.Space == nsStreams && el.Name.Local == "features":
			var f struct {
				StartTLS *struct {
					Required *struct{} `xml:"required"`
				} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
				Dialback *struct{} `xml:"urn:xmpp:features:dialback dialback"`
			}
			if err := dec.DecodeElement(&f, &el); err != nil {
				return st, err
			}
			st.Features = true
			st.StartTLS = f.StartTLS != nil
			st.TLSRequired = f.StartTLS != nil && f.StartTLS.Required != nil
			st.Dialback = st.Dialback || f.Dialback != nil
			return st, nil
		case el.Name.Space == nsStreams && el.Name.Local == "error":
			var e struct {
				Conds []struct {
					XMLName xml.Name
				} `xml:",any"`
			}
			if err := dec.DecodeElement(&e, &el); err != nil {
				return st, err
			}
			st.StreamError = "undefined-condition"
			for _, c := range e.Conds {
				if c.XMLName.Space == nsStreamsErr && c.XMLName.Local != "text" {
					st.StreamError = c.XMLName.Local
					break
				}
			}
			return st, nil
		default:
			if err := dec.Skip(); err != nil {
				return st, err
			}
		}
	}
}

// firstElement returns the first start tag, allowing only an XML
// declaration and whitespace before it (RFC 6120 §11.1 forbids the rest).
func firstElement(dec *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.ProcInst:
			if t.Target != "xml" {
				return xml.StartElement{}, fmt.Errorf("%w: processing instruction %q", errNotStream, t.Target)
			}
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return xml.StartElement{}, fmt.Errorf("%w: text before the root element", errNotStream)
			}
		default:
			return xml.StartElement{}, fmt.Errorf("%w: %T before the root element", errNotStream, tok)
		}
	}
}

func classifyReadErr(err error, addr string, saw *prefixBuffer) error {
	var ne net.Error
	var se *xml.SyntaxError
	switch {
	case saw.n == 0 && errors.As(err, &ne) && ne.Timeout():
		return &streamError{Kind: failSilent, Addr: addr, Err: err}
	case saw.n == 0:
		return &streamError{Kind: failClosed, Addr: addr, Err: err}
	case errors.Is(err, errNotStream), errors.As(err, &se), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &streamError{Kind: failNotXMPP, Addr: addr, Saw: saw.quote(), Err: err}
	case errors.As(err, &ne) && ne.Timeout():
		return &streamError{Kind: failNotXMPP, Addr: addr, Saw: saw.quote() + " and then nothing", Err: err}
	}
	return &streamError{Kind: failOther, Addr: addr, Err: err}
}

// prefixBuffer keeps the first max bytes written to it and counts the rest.
type prefixBuffer struct {
	max int
	n   int
	b   []byte
}

func (p *prefixBuffer) Write(b []byte) (int, error) {
	p.n += len(b)
	if room := p.max - len(p.b); room > 0 {
		p.b = append(p.b, b[:min(room, len(b))]...)
	}
	return len(b), nil
}

// quote returns the kept prefix as a Go string literal, cut at the first
// line end, safe to print whatever the peer sent.
func (p *prefixBuffer) quote() string {
	s := string(p.b)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return '.'
	}, s)
	if p.n > len(s) {
		return strconv.Quote(s) + "..."
	}
	return strconv.Quote(s)
}
