package lab

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"
)

// Stanza is one stanza a Client received: the XML as re-encoded from the
// parsed tokens (not the peer's exact bytes) and the fields tests look at.
// mellium blanks a from equal to the client's own bare JID (roster pushes).
type Stanza struct {
	Name string // message, presence or iq
	From string
	To   string
	Type string
	ID   string
	Body string // message body (first <body/>), as received
	Raw  string
}

// Client is a c2s connection of one Prosody user, for driving the XMPP side
// of a test. It keeps every stanza it receives (up to clientMaxStanzas).
type Client struct {
	JID jid.JID // full JID after resource binding

	conn    net.Conn
	session *xmpp.Session
	served  chan struct{}

	mu     sync.Mutex
	recv   []Stanza
	taken  []bool
	first  int           // recv[:first] are all taken
	notify chan struct{} // closed and replaced on every new stanza
	err    error         // why Serve ended
}

// clientMaxStanzas bounds what a Client keeps: a test that needs more is
// wrong, and memory stays bounded even against a flood.
const clientMaxStanzas = 10000

// Login connects to a c2s address (e.g. Prosody.C2SAddr), negotiates STARTTLS
// without verifying the certificate (the lab's c2s side is not under test),
// authenticates with SASL SCRAM-SHA-1 or PLAIN, binds a resource and sends
// initial presence, so messages to the bare JID reach this client. The
// connection closes when the test ends. Any failure ends the test.
func Login(t testing.TB, ctx context.Context, addr, user, password string) *Client {
	t.Helper()
	j, err := jid.Parse(user)
	if err != nil {
		t.Fatalf("lab.Login: JID %q: %v", user, err)
	}
	if host, _, err := net.SplitHostPort(addr); err != nil || net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
		t.Fatalf("lab.Login %s: address %q is not a loopback IP:port (e.g. Prosody.C2SAddr, 127.0.1.1:5222)", user, addr)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("lab.Login %s: %v", user, err)
	}
	// mellium ignores ctx during negotiation once a read blocks
	// (LIBRARIES.md §2.3 item 3): closing the connection unblocks it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	s, err := xmpp.NewClientSession(ctx, j.Bare(), conn,
		xmpp.StartTLS(&tls.Config{ServerName: j.Domain().String(), InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}),
		xmpp.SASL("", password, sasl.ScramSha1, sasl.Plain),
		xmpp.BindResource(),
	)
	if stopped := stop(); err != nil || !stopped {
		conn.Close()
		switch {
		case err == nil:
			err = ctx.Err()
		case ctx.Err() != nil:
			err = fmt.Errorf("%w; gave up: %w", err, ctx.Err())
		}
		t.Fatalf("lab.Login %s at %s: %v", user, addr, err)
	}
	c := &Client{JID: s.LocalAddr(), conn: conn, session: s, served: make(chan struct{}), notify: make(chan struct{})}
	go func() {
		err := s.Serve(xmpp.HandlerFunc(c.handle))
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.served)
	}()
	t.Cleanup(c.close)
	if err := c.SendPresence(ctx, "", ""); err != nil {
		t.Fatalf("lab.Login %s: initial presence: %v", user, err)
	}
	return c
}

// close ends the stream and waits (bounded) for Serve to return.
func (c *Client) close() {
	c.session.Close()
	select {
	case <-c.served:
	case <-time.After(2 * time.Second):
	}
	c.conn.Close()
	<-c.served
}

// handle records a stanza. Serve calls it with the element's start and a
// reader of the rest of it, including the end element.
func (c *Client) handle(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	var buf bytes.Buffer
	e := xml.NewEncoder(&buf)
	if err := e.EncodeToken(clientClean(*start)); err != nil {
		return err
	}
	for {
		tok, err := r.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if s, ok := tok.(xml.StartElement); ok {
			tok = clientClean(s)
		}
		if err := e.EncodeToken(tok); err != nil {
			return err
		}
	}
	if err := e.Flush(); err != nil {
		return err
	}
	st := Stanza{Name: start.Name.Local, Raw: buf.String()}
	for _, a := range start.Attr {
		switch a.Name.Local {
		case "from":
			st.From = a.Value
		case "to":
			st.To = a.Value
		case "type":
			st.Type = a.Value
		case "id":
			st.ID = a.Value
		}
	}
	var body struct {
		Body []string `xml:"body"`
	}
	if err := xml.Unmarshal(buf.Bytes(), &body); err == nil && len(body.Body) > 0 {
		st.Body = body.Body[0]
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.recv) >= clientMaxStanzas {
		return fmt.Errorf("lab client %s: more than %d stanzas received; refusing more", c.JID, clientMaxStanzas)
	}
	c.recv = append(c.recv, st)
	c.taken = append(c.taken, false)
	close(c.notify)
	c.notify = make(chan struct{})
	return nil
}

// clientClean drops xmlns attributes: the encoder writes the namespace from
// the element's name, and a copy would duplicate it.
func clientClean(s xml.StartElement) xml.StartElement {
	attrs := make([]xml.Attr, 0, len(s.Attr))
	for _, a := range s.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		attrs = append(attrs, a)
	}
	s.Attr = attrs
	return s
}

// WaitFor returns the earliest received stanza that match accepts and that no
// earlier WaitFor returned, waiting until ctx ends for one to arrive.
func (c *Client) WaitFor(ctx context.Context, match func(Stanza) bool) (Stanza, error) {
	for {
		c.mu.Lock()
		for i := c.first; i < len(c.recv); i++ {
			if st := c.recv[i]; !c.taken[i] && match(st) {
				c.taken[i] = true
				for c.first < len(c.taken) && c.taken[c.first] {
					c.first++
				}
				c.mu.Unlock()
				return st, nil
			}
		}
		notify, n, serveErr := c.notify, len(c.recv), c.err
		c.mu.Unlock()
		select {
		case <-notify:
		case <-c.served:
			return Stanza{}, fmt.Errorf("lab client %s: stream ended (%v) before a matching stanza among %d received", c.JID, serveErr, n)
		case <-ctx.Done():
			return Stanza{}, fmt.Errorf("lab client %s: no matching stanza among %d received: %w", c.JID, n, ctx.Err())
		}
	}
}

// Received returns a copy of every stanza received so far.
func (c *Client) Received() []Stanza {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Stanza(nil), c.recv...)
}

// MessageFrom is a WaitFor predicate: message stanzas with a body from the bare
// JID from (any resource).
func MessageFrom(from string) func(Stanza) bool {
	return func(s Stanza) bool {
		return s.Name == "message" && s.Body != "" && (s.From == from || jidBare(s.From) == from)
	}
}

func jidBare(s string) string {
	j, err := jid.Parse(s)
	if err != nil {
		return s
	}
	return j.Bare().String()
}

// SendMessage sends a chat message with body to the JID to.
func (c *Client) SendMessage(ctx context.Context, to, body string) error {
	j, err := jid.Parse(to)
	if err != nil {
		return fmt.Errorf("lab client: message to %q: %w", to, err)
	}
	b := xml.StartElement{Name: xml.Name{Local: "body"}}
	msg := stanza.Message{To: j, Type: stanza.ChatMessage}.Wrap(xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), b))
	return c.session.Send(ctx, msg)
}

// SendChatState sends a chat message carrying only an XEP-0085 chat state
// (composing, paused, active, inactive, gone) to the JID to.
func (c *Client) SendChatState(ctx context.Context, to, state string) error {
	j, err := jid.Parse(to)
	if err != nil {
		return fmt.Errorf("lab client: chat state to %q: %w", to, err)
	}
	cs := xml.StartElement{Name: xml.Name{Space: "http://jabber.org/protocol/chatstates", Local: state}}
	msg := stanza.Message{To: j, Type: stanza.ChatMessage}.Wrap(xmlstream.Wrap(nil, cs))
	return c.session.Send(ctx, msg)
}

// SendPresence sends a presence of type typ ("" available, "unavailable",
// "subscribe", "subscribed", ...) to the JID to ("" broadcasts).
func (c *Client) SendPresence(ctx context.Context, to, typ string) error {
	p := stanza.Presence{Type: stanza.PresenceType(typ)}
	if to != "" {
		j, err := jid.Parse(to)
		if err != nil {
			return fmt.Errorf("lab client: presence to %q: %w", to, err)
		}
		p.To = j
	}
	return c.session.Send(ctx, p.Wrap(nil))
}

// SendStatus broadcasts the user's presence with a <show/> ("" for plain
// available, away, chat, dnd, xa) and a <status/> text ("" for none).
func (c *Client) SendStatus(ctx context.Context, show, status string) error {
	var inner []xml.TokenReader
	if show != "" {
		inner = append(inner, xmlstream.Wrap(xmlstream.Token(xml.CharData(show)), xml.StartElement{Name: xml.Name{Local: "show"}}))
	}
	if status != "" {
		inner = append(inner, xmlstream.Wrap(xmlstream.Token(xml.CharData(status)), xml.StartElement{Name: xml.Name{Local: "status"}}))
	}
	return c.session.Send(ctx, stanza.Presence{}.Wrap(xmlstream.MultiReader(inner...)))
}

// RequestRoster fetches the user's roster (RFC 6121 §2.2) and so makes this
// resource "interested": only such resources get subscription approvals
// and roster pushes from the server (RFC 6121 §3.1.6; Prosody's
// send_to_interested_resources).
func (c *Client) RequestRoster(ctx context.Context) error {
	q := xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "jabber:iq:roster", Local: "query"}})
	if err := c.session.UnmarshalIQ(ctx, stanza.IQ{Type: stanza.GetIQ}.Wrap(q), nil); err != nil {
		return fmt.Errorf("lab client %s: roster: %w", c.JID, err)
	}
	return nil
}

// Subscribe asks for the presence of the bare JID to.
func (c *Client) Subscribe(ctx context.Context, to string) error {
	return c.SendPresence(ctx, to, string(stanza.SubscribePresence))
}

// Ping sends an XEP-0199 ping to the JID to (a domain pings that server) and
// waits for the reply: nil for a result, the stanza error for an error reply
// (unlike mellium's ping.Send, service-unavailable counts as failure), or the
// ctx error on timeout.
func (c *Client) Ping(ctx context.Context, to string) error {
	j, err := jid.Parse(to)
	if err != nil {
		return fmt.Errorf("lab client: ping %q: %w", to, err)
	}
	err = c.session.UnmarshalIQ(ctx, ping.IQ{IQ: stanza.IQ{Type: stanza.GetIQ, To: j}}.TokenReader(), nil)
	if err != nil {
		return fmt.Errorf("lab client %s: ping %s: %w", c.JID, to, err)
	}
	return nil
}
