package sip

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Notification is one NOTIFY we send on a subscription the Edge created.
type Notification struct {
	// State goes into Subscription-State; StateTerminated ends the dialog.
	State State
	// Reason is for StateTerminated (RFC 6665 §4.1.3: deactivated,
	// probation, rejected, timeout, giveup, noresource, invariant).
	Reason      string
	ContentType string
	Body        []byte
}

// onSubscribe handles SUBSCRIBE as notifier (RFC 6665 §4.2.1).
func (e *Endpoint) onSubscribe(ctx context.Context, req *sip.Request) (*sip.Response, func()) {
	pkg, eventID := parseEvent(header(req, "Event", "o"))
	if pkg == "" {
		return reply(req, 400, "Missing Event header"), nil
	}
	if !slices.ContainsFunc(e.cfg.Events, func(s string) bool { return strings.EqualFold(s, pkg) }) {
		return e.badEvent(req), nil
	}
	expires, err := parseExpires(req)
	if err != nil {
		return reply(req, 400, err.Error()), nil
	}
	if to := req.To(); to != nil && to.Params.Has("tag") {
		return e.updateSubscription(ctx, req, pkg, eventID, expires)
	}
	return e.acceptSubscription(ctx, req, pkg, eventID, expires)
}

func (e *Endpoint) badEvent(req *sip.Request) *sip.Response {
	res := reply(req, 489, "")
	res.AppendHeader(sip.NewHeader("Allow-Events", strings.Join(e.cfg.Events, ", ")))
	return res
}

// grant applies Expires negotiation (RFC 6665 §4.2.1.1): 423 below the
// minimum, lowered to the maximum. It returns the response to send instead
// when the request is refused.
func (e *Endpoint) grant(req *sip.Request, expires int) (time.Duration, *sip.Response) {
	if expires < 0 {
		return min(e.cfg.DefaultExpires, e.cfg.MaxExpires), nil
	}
	d := time.Duration(expires) * time.Second
	if d > 0 && d < e.cfg.MinExpires {
		res := reply(req, 423, "")
		res.AppendHeader(sip.NewHeader("Min-Expires", strconv.Itoa(seconds(e.cfg.MinExpires))))
		return 0, res
	}
	return min(d, e.cfg.MaxExpires), nil
}

func (e *Endpoint) acceptSubscription(ctx context.Context, req *sip.Request, pkg, eventID string, expires int) (*sip.Response, func()) {
	contact := req.Contact()
	if contact == nil || contact.Address.Wildcard || contact.Address.Host == "" {
		return reply(req, 400, "Missing Contact header"), nil
	}
	from, to := req.From(), req.To()
	remoteTag, _ := from.Params.Get("tag")
	if remoteTag == "" {
		return reply(req, 400, "Missing From tag"), nil
	}
	dur, refuse := e.grant(req, expires)
	if refuse != nil {
		return refuse, nil
	}
	now := time.Now()
	sub := Subscription{
		ID:           DialogID{CallID: callID(req), LocalTag: newToken(8), RemoteTag: remoteTag},
		Role:         RoleNotifier,
		Event:        pkg,
		EventID:      eventID,
		LocalURI:     to.Address.String(),
		RemoteURI:    from.Address.String(),
		RemoteTarget: contact.Address.String(),
		RouteSet:     routeSet(req, false),
		LocalCSeq:    uint32(now.UnixNano()>>20) & 0x7fffffff,
		RemoteCSeq:   req.CSeq().SeqNo,
		Expires:      now.Add(dur),
		State:        StateActive,
		Created:      now,
	}
	ans := e.cfg.Handler.HandleSubscribe(ctx, ChangeNew, sub.clone())
	if ans.Status < 200 || ans.Status >= 300 {
		return e.refuse(req, ans.Status), nil
	}
	if ctx.Err() != nil {
		return reply(req, 504, ""), nil
	}
	if ans.Status == 202 {
		sub.State = StatePending
	}
	d := newDialog(sub)
	first := Notification{State: sub.State, ContentType: ans.ContentType, Body: ans.Body}
	if dur == 0 {
		// A fetch (RFC 6665 §4.4.3): one NOTIFY that terminates, no state kept.
		first = Notification{State: StateTerminated, Reason: "timeout", ContentType: ans.ContentType, Body: ans.Body}
	} else {
		if err := e.cfg.Store.Put(ctx, sub); err != nil {
			e.log.Error("sip: store write failed, refusing SUBSCRIBE", "dialog", sub.ID.String(), "err", err)
			return reply(req, 500, "Subscription Not Stored"), nil
		}
		d.mu.Lock()
		e.armLocked(d, dur, func() { e.expireNotifier(d) })
		d.mu.Unlock()
		e.dialogs.put(d)
		e.logDialog("sip: dialog created", sub)
	}
	res := e.subscribeOK(req, sub.ID.LocalTag, dur)
	return res, func() { e.notifyDialog(d, first) }
}

// subscribeOK is the 200 to a SUBSCRIBE, with our tag, the granted
// Expires and our Contact.
func (e *Endpoint) subscribeOK(req *sip.Request, localTag string, dur time.Duration) *sip.Response {
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	if to := res.To(); to != nil {
		to.Params.Remove("tag")
		to.Params.Add("tag", localTag)
	}
	res.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(seconds(dur))))
	res.AppendHeader(e.contactHeader())
	return res
}

// refuse maps a handler's refusal to a final response; nonsense becomes 500.
func (e *Endpoint) refuse(req *sip.Request, status int) *sip.Response {
	if status < 300 || status > 699 {
		e.log.Error("sip: handler returned an invalid status", "status", status, "call-id", callID(req))
		status = 500
	}
	return reply(req, status, "")
}

// updateSubscription handles a refresh or unsubscribe (RFC 6665 §4.2.1.2,
// §4.2.1.4).
func (e *Endpoint) updateSubscription(ctx context.Context, req *sip.Request, pkg, eventID string, expires int) (*sip.Response, func()) {
	id := DialogID{CallID: callID(req), LocalTag: tagOf(req.To().Params), RemoteTag: tagOf(req.From().Params)}
	d, ok := e.dialogs.get(id)
	if !ok {
		e.log.Info("sip: SUBSCRIBE for unknown dialog", "dialog", id.String())
		return reply(req, 481, ""), nil
	}
	d.mu.Lock()
	s := d.sub
	if s.Role != RoleNotifier {
		d.mu.Unlock()
		return reply(req, 481, ""), nil
	}
	if !strings.EqualFold(s.Event, pkg) || s.EventID != eventID {
		d.mu.Unlock()
		return e.badEvent(req), nil
	}
	if seq := req.CSeq().SeqNo; seq <= s.RemoteCSeq {
		d.mu.Unlock()
		return reply(req, 500, "CSeq Out of Order"), nil
	}
	d.sub.RemoteCSeq = req.CSeq().SeqNo
	d.mu.Unlock()

	if expires == 0 {
		ans := e.cfg.Handler.HandleSubscribe(ctx, ChangeUnsubscribe, d.snapshot())
		e.end(ctx, d, "unsubscribed")
		res := e.subscribeOK(req, id.LocalTag, 0)
		return res, func() {
			e.notifyDialog(d, Notification{State: StateTerminated, Reason: "timeout", ContentType: ans.ContentType, Body: ans.Body})
		}
	}
	dur, refuse := e.grant(req, expires)
	if refuse != nil {
		return refuse, nil
	}
	ans := e.cfg.Handler.HandleSubscribe(ctx, ChangeRefresh, d.snapshot())
	if ans.Status < 200 || ans.Status >= 300 {
		// The subscription runs on until it expires (RFC 6665 §4.1.2.2).
		return e.refuse(req, ans.Status), nil
	}
	d.mu.Lock()
	if d.ended {
		d.mu.Unlock()
		return reply(req, 481, ""), nil
	}
	if c := req.Contact(); c != nil && c.Address.Host != "" {
		d.sub.RemoteTarget = c.Address.String() // target refresh
	}
	d.sub.Expires = time.Now().Add(dur)
	s = d.sub.clone()
	err := e.cfg.Store.Put(ctx, s)
	if err == nil {
		e.armLocked(d, dur, func() { e.expireNotifier(d) })
	}
	d.mu.Unlock()
	if err != nil {
		e.log.Error("sip: store write failed, refusing refresh", "dialog", id.String(), "err", err)
		return reply(req, 500, "Subscription Not Stored"), nil
	}
	e.logDialog("sip: dialog refreshed", s)
	return e.subscribeOK(req, id.LocalTag, dur), func() {
		e.notifyDialog(d, Notification{State: s.State, ContentType: ans.ContentType, Body: ans.Body})
	}
}

// expireNotifier ends a subscription nobody refreshed (RFC 6665 §4.2.2).
func (e *Endpoint) expireNotifier(d *dialog) {
	ctx, cancel := context.WithTimeout(e.base, e.cfg.RequestTimeout)
	defer cancel()
	s := d.snapshot()
	if !e.end(ctx, d, "timeout") {
		return
	}
	e.notifyDialog(d, Notification{State: StateTerminated, Reason: "timeout"})
	e.ended(s, "expired")
}

// Notify sends a NOTIFY on a subscription the Edge created. A 481, a
// timeout or a transport failure ends the dialog (RFC 6665 §4.2.2) and is
// returned; other refusals come back as *StatusError.
func (e *Endpoint) Notify(ctx context.Context, id DialogID, n Notification) error {
	d, ok := e.dialogs.get(id)
	if !ok || d.snapshot().Role != RoleNotifier {
		return fmt.Errorf("sip: NOTIFY on %s: %w", id, ErrNoDialog)
	}
	if n.State == StateTerminated {
		e.end(ctx, d, n.Reason)
	} else if err := e.setNotifierState(ctx, d, n.State); err != nil {
		return err
	}
	return e.sendNotify(ctx, d, n)
}

// setNotifierState records the state a NOTIFY announces (pending ->
// active when the watched user approves), so that the NOTIFY answering a
// refresh, and a restart, keep announcing it.
func (e *Endpoint) setNotifierState(ctx context.Context, d *dialog, st State) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ended || d.sub.State == st {
		return nil
	}
	d.sub.State = st
	if err := e.cfg.Store.Put(ctx, d.sub.clone()); err != nil {
		return fmt.Errorf("sip: NOTIFY on %s: store: %w", d.sub.ID, err)
	}
	return nil
}

// notifyDialog sends a NOTIFY in the background after a response.
func (e *Endpoint) notifyDialog(d *dialog, n Notification) {
	ctx, cancel := context.WithTimeout(e.base, e.cfg.RequestTimeout)
	defer cancel()
	e.sendNotify(ctx, d, n) // failures are logged there
}

func (e *Endpoint) sendNotify(ctx context.Context, d *dialog, n Notification) error {
	if err := d.lock(ctx); err != nil {
		return fmt.Errorf("sip: NOTIFY waiting for the previous one: %w: %w", ErrTimeout, err)
	}
	defer d.unlock()
	d.mu.Lock()
	if d.ended && n.State != StateTerminated {
		d.mu.Unlock()
		return fmt.Errorf("sip: NOTIFY on %s: %w", d.sub.ID, ErrNoDialog)
	}
	d.sub.LocalCSeq++
	s := d.sub.clone()
	d.mu.Unlock()

	req, dest, err := e.inDialogRequest(s, sip.NOTIFY)
	if err != nil {
		return err
	}
	state := string(n.State)
	switch n.State {
	case StateTerminated:
		reason := n.Reason
		if reason == "" {
			reason = "noresource"
		}
		state += ";reason=" + reason
	default:
		state += ";expires=" + strconv.Itoa(max(seconds(time.Until(s.Expires)), 0))
	}
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	if n.ContentType != "" {
		ct := sip.ContentTypeHeader(n.ContentType)
		req.AppendHeader(&ct)
	}
	req.SetBody(n.Body)
	res, err := e.do(ctx, req, dest)
	if err != nil {
		if errors.Is(err, ErrClosed) || e.base.Err() != nil {
			return err // shutting down: the dialog stays stored
		}
		e.log.Warn("sip: NOTIFY failed", "dialog", s.ID.String(), "err", err)
		if n.State != StateTerminated && e.end(ctx, d, "NOTIFY failed") {
			e.ended(s, err.Error())
		}
		return err
	}
	if res.StatusCode >= 300 {
		e.log.Warn("sip: NOTIFY refused", "dialog", s.ID.String(), "status", res.StatusCode, "reason", res.Reason)
		if res.StatusCode == 481 && e.end(ctx, d, "NOTIFY answered 481") {
			e.ended(s, "peer answered 481 to NOTIFY")
		}
		return &StatusError{Method: sip.NOTIFY, Status: res.StatusCode, Reason: res.Reason}
	}
	return nil
}

// ended tells the Handler a dialog ended without a request from the peer.
func (e *Endpoint) ended(s Subscription, reason string) {
	ctx, cancel := context.WithTimeout(e.base, e.cfg.HandlerTimeout)
	defer cancel()
	s.State = StateTerminated
	e.cfg.Handler.HandleEnded(ctx, s, reason)
}

func tagOf(p sip.HeaderParams) string {
	v, _ := p.Get("tag")
	return v
}
