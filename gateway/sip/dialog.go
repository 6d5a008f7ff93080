package sip

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Role is our side of a subscription dialog.
type Role string

// Roles.
const (
	// RoleNotifier: the Edge subscribed to one of our users; we send NOTIFY.
	RoleNotifier Role = "notifier"
	// RoleSubscriber: we subscribed through the Edge; we receive NOTIFY.
	RoleSubscriber Role = "subscriber"
)

// State is a subscription state (RFC 6665 §4.1.3 Subscription-State).
type State string

// States.
const (
	StatePending    State = "pending"
	StateActive     State = "active"
	StateTerminated State = "terminated"
)

// DialogID identifies a dialog (RFC 3261 §12): Call-ID and both tags, seen
// from our side.
type DialogID struct {
	CallID    string `json:"call_id"`
	LocalTag  string `json:"local_tag"`
	RemoteTag string `json:"remote_tag"`
}

func (id DialogID) String() string {
	return id.CallID + ";local=" + id.LocalTag + ";remote=" + id.RemoteTag
}

// Subscription is one SUBSCRIBE/NOTIFY dialog, as stored and as handed to
// the Handler (a copy: changing it changes nothing).
type Subscription struct {
	ID   DialogID `json:"id"`
	Role Role     `json:"role"`
	// Event is the event package (presence); EventID its id parameter.
	Event   string `json:"event"`
	EventID string `json:"event_id,omitempty"`
	// LocalURI and RemoteURI are the From/To addresses of each side (for
	// a notifier, LocalURI is the watched user).
	LocalURI  string `json:"local_uri"`
	RemoteURI string `json:"remote_uri"`
	// RemoteTarget is the peer's Contact; RouteSet comes from Record-Route.
	RemoteTarget string   `json:"remote_target"`
	RouteSet     []string `json:"route_set,omitempty"`
	LocalCSeq    uint32   `json:"local_cseq"`
	// RemoteCSeq is 0 until the peer sends a request in the dialog.
	RemoteCSeq uint32 `json:"remote_cseq"`
	// Interval is the duration we ask for on refresh (subscriber role).
	Interval time.Duration `json:"interval,omitempty"`
	Expires  time.Time     `json:"expires"`
	State    State         `json:"state"`
	// Reason is the termination reason (RFC 6665 §4.1.3).
	Reason  string    `json:"reason,omitempty"`
	Created time.Time `json:"created"`
}

func (s Subscription) clone() Subscription {
	s.RouteSet = slices.Clone(s.RouteSet)
	return s
}

// dialog is a Subscription in memory with its timer and send lock.
type dialog struct {
	mu    sync.Mutex // guards sub, timer, ended, leaving
	sub   Subscription
	timer *time.Timer
	ended bool
	// leaving: we unsubscribed and only wait for the final NOTIFY; the
	// dialog is out of the Store and must not come back.
	leaving bool
	// send holds a token while one of our requests in this dialog is in
	// flight (RFC 6665 §4.2.2: one NOTIFY at a time).
	send chan struct{}
}

func newDialog(s Subscription) *dialog {
	return &dialog{sub: s, send: make(chan struct{}, 1)}
}

func (d *dialog) snapshot() Subscription {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sub.clone()
}

// lock takes the dialog's send token.
func (d *dialog) lock(ctx context.Context) error {
	select {
	case d.send <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *dialog) unlock() { <-d.send }

// pendingKey finds the SUBSCRIBE we sent, before its 2xx told us the
// remote tag (a NOTIFY may come first, RFC 6665 §4.1.2.4).
type pendingKey struct{ callID, localTag string }

type dialogTable struct {
	mu      sync.Mutex
	m       map[DialogID]*dialog
	pending map[pendingKey]Subscription
	// early holds dialogs a NOTIFY created before Subscribe handled the
	// 2xx, even once they ended, so that a late 2xx does not revive one.
	early map[DialogID]*dialog
}

func (t *dialogTable) init() {
	t.m = map[DialogID]*dialog{}
	t.pending = map[pendingKey]Subscription{}
	t.early = map[DialogID]*dialog{}
}

// created returns the dialog a NOTIFY created for id, live or ended, or
// the live dialog.
func (t *dialogTable) created(id DialogID) (*dialog, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d, ok := t.early[id]; ok {
		return d, true
	}
	d, ok := t.m[id]
	return d, ok
}

func (t *dialogTable) get(id DialogID) (*dialog, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok := t.m[id]
	return d, ok
}

func (t *dialogTable) put(d *dialog) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[d.sub.ID] = d
}

// remove takes d out of the table if it is still the one stored under id.
func (t *dialogTable) remove(id DialogID, d *dialog) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[id] == d {
		delete(t.m, id)
	}
}

func (t *dialogTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

func (t *dialogTable) stopTimers() {
	t.mu.Lock()
	ds := make([]*dialog, 0, len(t.m))
	for _, d := range t.m {
		ds = append(ds, d)
	}
	t.mu.Unlock()
	for _, d := range ds {
		d.mu.Lock()
		if d.timer != nil {
			d.timer.Stop()
		}
		d.mu.Unlock()
	}
}

// Subscriptions lists the live dialogs.
func (e *Endpoint) Subscriptions() []Subscription {
	e.dialogs.mu.Lock()
	ds := make([]*dialog, 0, len(e.dialogs.m))
	for _, d := range e.dialogs.m {
		ds = append(ds, d)
	}
	e.dialogs.mu.Unlock()
	out := make([]Subscription, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.snapshot())
	}
	return out
}

// Subscription returns one live dialog.
func (e *Endpoint) Subscription(id DialogID) (Subscription, bool) {
	d, ok := e.dialogs.get(id)
	if !ok {
		return Subscription{}, false
	}
	return d.snapshot(), true
}

// armLocked (re)starts d's timer; d.mu must be held.
func (e *Endpoint) armLocked(d *dialog, after time.Duration, f func()) {
	if d.timer != nil {
		d.timer.Stop()
	}
	d.timer = time.AfterFunc(max(after, 0), func() {
		if !e.track() {
			return // closing: the Store keeps the dialog for the next start
		}
		defer e.wg.Done()
		f()
	})
}

// end terminates d: out of the table and the Store, timer stopped, logged.
// It reports false when d had already ended.
func (e *Endpoint) end(ctx context.Context, d *dialog, reason string) bool {
	d.mu.Lock()
	if d.ended {
		d.mu.Unlock()
		return false
	}
	d.ended = true
	if d.timer != nil {
		d.timer.Stop()
	}
	d.sub.State = StateTerminated
	d.sub.Reason = reason
	s := d.sub
	d.mu.Unlock()
	e.dialogs.remove(s.ID, d)
	if err := e.cfg.Store.Delete(ctx, s.ID); err != nil {
		e.log.Error("sip: store delete failed", "dialog", s.ID.String(), "err", err)
	}
	e.logDialog("sip: dialog terminated", s, "reason", reason)
	return true
}

func (e *Endpoint) logDialog(msg string, s Subscription, args ...any) {
	base := []any{"dialog", s.ID.String(), "role", s.Role, "event", s.Event, "local", s.LocalURI, "remote", s.RemoteURI, "state", s.State}
	if !s.Expires.IsZero() {
		base = append(base, "expires", s.Expires.Format(time.RFC3339))
	}
	e.log.Info(msg, append(base, args...)...)
}

// inDialogRequest builds a request inside s (RFC 3261 §12.2.1.1) and its
// first hop: the first route, or the Edge when the route set is empty.
func (e *Endpoint) inDialogRequest(s Subscription, method sip.RequestMethod) (*sip.Request, string, error) {
	var target, local, remote sip.Uri
	if err := sip.ParseUri(s.RemoteTarget, &target); err != nil {
		return nil, "", fmt.Errorf("sip: dialog %s: remote target %q: %w", s.ID, s.RemoteTarget, err)
	}
	if err := sip.ParseUri(s.LocalURI, &local); err != nil {
		return nil, "", fmt.Errorf("sip: dialog %s: local URI %q: %w", s.ID, s.LocalURI, err)
	}
	if err := sip.ParseUri(s.RemoteURI, &remote); err != nil {
		return nil, "", fmt.Errorf("sip: dialog %s: remote URI %q: %w", s.ID, s.RemoteURI, err)
	}
	req := sip.NewRequest(method, target)
	dest := e.edgeAddr
	for i, r := range s.RouteSet {
		var u sip.Uri
		if err := sip.ParseUri(r, &u); err != nil {
			return nil, "", fmt.Errorf("sip: dialog %s: route %q: %w", s.ID, r, err)
		}
		req.AppendHeader(&sip.RouteHeader{Address: u})
		if i == 0 {
			dest = e.hopAddr(u)
		}
	}
	from := &sip.FromHeader{Address: local, Params: sip.NewParams()}
	from.Params.Add("tag", s.ID.LocalTag)
	to := &sip.ToHeader{Address: remote, Params: sip.NewParams()}
	to.Params.Add("tag", s.ID.RemoteTag)
	cid := sip.CallIDHeader(s.ID.CallID)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: s.LocalCSeq, MethodName: method})
	req.AppendHeader(e.contactHeader())
	req.AppendHeader(sip.NewHeader("Event", eventValue(s.Event, s.EventID)))
	return req, dest, nil
}

// hopAddr is HOST:PORT of a route URI, with the Edge transport's default
// port when the URI has none.
func (e *Endpoint) hopAddr(u sip.Uri) string {
	port := u.Port
	if port == 0 {
		port = int(sip.DefaultPort(e.edgeTP))
	}
	return net.JoinHostPort(u.Host, strconv.Itoa(port))
}

func (e *Endpoint) contactHeader() *sip.ContactHeader {
	e.listenMu.Lock()
	defer e.listenMu.Unlock()
	return &sip.ContactHeader{Address: *e.contact.Clone()}
}

// headers is what requests and responses share for reading headers.
type headers interface {
	GetHeader(name string) sip.Header
	GetHeaders(name string) []sip.Header
}

// header returns the value of a header by its long or compact name.
func header(m headers, long, compact string) string {
	if h := m.GetHeader(long); h != nil {
		return h.Value()
	}
	if compact != "" {
		if h := m.GetHeader(compact); h != nil {
			return h.Value()
		}
	}
	return ""
}

// parseEvent splits an Event header value (RFC 6665 §8.2.1) into the
// package and its id parameter.
func parseEvent(v string) (pkg, id string) {
	parts := strings.Split(v, ";")
	pkg = strings.TrimSpace(parts[0])
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "id") {
			id = strings.Trim(strings.TrimSpace(val), `"`)
		}
	}
	return pkg, id
}

func eventValue(pkg, id string) string {
	if id == "" {
		return pkg
	}
	return pkg + ";id=" + id
}

// subState is a parsed Subscription-State header (RFC 6665 §8.2.3).
type subState struct {
	state   State
	expires int // -1 when absent
	reason  string
}

func parseSubState(v string) (subState, error) {
	parts := strings.Split(v, ";")
	st := subState{state: State(strings.ToLower(strings.TrimSpace(parts[0]))), expires: -1}
	switch st.state {
	case StateActive, StatePending, StateTerminated:
	default:
		return st, fmt.Errorf("found %q, expected active, pending or terminated", parts[0])
	}
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "expires":
			n, err := strconv.Atoi(strings.TrimSpace(val))
			if err != nil || n < 0 {
				return st, fmt.Errorf("expires=%q, expected seconds", val)
			}
			st.expires = n
		case "reason":
			st.reason = strings.TrimSpace(val)
		}
	}
	return st, nil
}

// parseExpires reads the Expires header: -1 when absent.
func parseExpires(m headers) (int, error) {
	v := header(m, "Expires", "")
	if v == "" {
		return -1, nil
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("Expires %q is not a number of seconds", v)
	}
	return int(n), nil
}

// routeSet reads Record-Route in order, reversed for a UAC (RFC 3261
// §12.1.2) and as is for a UAS (§12.1.1).
func routeSet(m headers, reverse bool) []string {
	var out []string
	for _, h := range m.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			out = append(out, rr.Address.String())
		}
	}
	if reverse {
		slices.Reverse(out)
	}
	return out
}

func newToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func seconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }
