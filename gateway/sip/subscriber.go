package sip

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// SubscribeRequest is a subscription we create through the Edge, e.g. an
// XMPP user asking for a SIP user's presence (RFC 7248 §4).
type SubscribeRequest struct {
	From, To sip.Uri
	Event    string        // default presence
	Expires  time.Duration // default Config.DefaultExpires
	// Accept lists the body types we take (default application/pidf+xml).
	Accept []string
}

// lingerAfterUnsubscribe is how long an unsubscribed dialog still takes
// its final NOTIFY (Timer F: the notifier may be retransmitting).
const lingerAfterUnsubscribe = 32 * time.Second

// Subscribe sends a SUBSCRIBE through the Edge and returns the dialog its
// 2xx (or a NOTIFY arriving first) created. A refusal is a *StatusError;
// no answer wraps ErrTimeout or ErrTransport. The dialog is refreshed
// until Unsubscribe or until the notifier ends it.
func (e *Endpoint) Subscribe(ctx context.Context, r SubscribeRequest) (Subscription, error) {
	if r.Event == "" {
		r.Event = "presence"
	}
	if r.Expires == 0 {
		r.Expires = e.cfg.DefaultExpires
	}
	if len(r.Accept) == 0 {
		r.Accept = []string{"application/pidf+xml"}
	}
	if r.From.Host == "" || r.To.Host == "" {
		return Subscription{}, fmt.Errorf("sip: SUBSCRIBE from %q to %q: both need a host", r.From.String(), r.To.String())
	}
	if e.Addr() == nil {
		return Subscription{}, errors.New("sip: SUBSCRIBE before Listen: the notifier needs our Contact; call Listen or Serve first")
	}
	now := time.Now()
	tmpl := Subscription{
		ID:        DialogID{CallID: newToken(16), LocalTag: newToken(8)},
		Role:      RoleSubscriber,
		Event:     r.Event,
		LocalURI:  r.From.String(),
		RemoteURI: r.To.String(),
		LocalCSeq: 1,
		Interval:  r.Expires,
		Expires:   now.Add(r.Expires),
		State:     StatePending,
		Created:   now,
	}
	key := pendingKey{tmpl.ID.CallID, tmpl.ID.LocalTag}
	e.dialogs.mu.Lock()
	e.dialogs.pending[key] = tmpl
	e.dialogs.mu.Unlock()
	defer func() {
		e.dialogs.mu.Lock()
		delete(e.dialogs.pending, key)
		for id := range e.dialogs.early {
			if id.CallID == key.callID && id.LocalTag == key.localTag {
				delete(e.dialogs.early, id)
			}
		}
		e.dialogs.mu.Unlock()
	}()

	expires := r.Expires
	var res *sip.Response
	for attempt := 0; ; attempt++ {
		req := sip.NewRequest(sip.SUBSCRIBE, r.To)
		from := &sip.FromHeader{Address: r.From, Params: sip.NewParams()}
		from.Params.Add("tag", tmpl.ID.LocalTag)
		cid := sip.CallIDHeader(tmpl.ID.CallID)
		req.AppendHeader(from)
		req.AppendHeader(&sip.ToHeader{Address: r.To, Params: sip.NewParams()})
		req.AppendHeader(&cid)
		req.AppendHeader(&sip.CSeqHeader{SeqNo: tmpl.LocalCSeq, MethodName: sip.SUBSCRIBE})
		req.AppendHeader(e.contactHeader())
		req.AppendHeader(sip.NewHeader("Event", r.Event))
		req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(seconds(expires))))
		req.AppendHeader(sip.NewHeader("Accept", strings.Join(r.Accept, ", ")))
		var err error
		res, err = e.do(ctx, req, e.edgeAddr)
		if err != nil {
			e.dropForks(tmpl.ID, "SUBSCRIBE failed")
			e.log.Warn("sip: SUBSCRIBE failed", "to", r.To.String(), "call-id", tmpl.ID.CallID, "err", err)
			return Subscription{}, err
		}
		if res.StatusCode == 423 && attempt == 0 {
			if m, err := strconv.Atoi(header(res, "Min-Expires", "")); err == nil && m > 0 {
				expires = time.Duration(m) * time.Second
				tmpl.LocalCSeq++
				tmpl.Interval = expires
				continue
			}
		}
		break
	}
	if res.StatusCode < 200 || res.StatusCode >= 300 {
		e.dropForks(tmpl.ID, "SUBSCRIBE refused")
		e.log.Info("sip: SUBSCRIBE refused", "to", r.To.String(), "call-id", tmpl.ID.CallID, "status", res.StatusCode, "reason", res.Reason)
		return Subscription{}, &StatusError{Method: sip.SUBSCRIBE, Status: res.StatusCode, Reason: res.Reason}
	}
	granted := expires
	if n, err := parseExpires(res); err == nil && n >= 0 {
		granted = time.Duration(n) * time.Second
	}
	id := tmpl.ID
	id.RemoteTag = tagOf(res.To().Params)
	if d, ok := e.dialogs.created(id); ok {
		return e.adoptEarly(ctx, d, tmpl, granted)
	}
	s := tmpl
	s.ID = id
	s.RouteSet = routeSet(res, true)
	s.RemoteTarget = r.To.String()
	if c := res.Contact(); c != nil && c.Address.Host != "" {
		s.RemoteTarget = c.Address.String()
	}
	s.Expires = time.Now().Add(granted)
	if err := e.cfg.Store.Put(ctx, s); err != nil {
		return Subscription{}, fmt.Errorf("sip: store subscription %s: %w", s.ID, err)
	}
	d := newDialog(s)
	e.dialogs.mu.Lock()
	early, ok := e.dialogs.early[id]
	if !ok {
		early, ok = e.dialogs.m[id]
	}
	if ok {
		// A NOTIFY made the dialog while ours was being stored: it holds
		// the newer state.
		e.dialogs.mu.Unlock()
		return e.adoptEarly(ctx, early, tmpl, granted)
	}
	e.dialogs.m[id] = d
	e.dialogs.mu.Unlock()
	d.mu.Lock()
	e.armLocked(d, refreshDelay(granted), func() { e.refresh(d) })
	d.mu.Unlock()
	e.logDialog("sip: dialog created", s)
	return s.clone(), nil
}

// adoptEarly completes a dialog that a NOTIFY created before our
// SUBSCRIBE's 2xx was handled: the 2xx sets the duration.
func (e *Endpoint) adoptEarly(ctx context.Context, d *dialog, tmpl Subscription, granted time.Duration) (Subscription, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sub.Expires = time.Now().Add(granted)
	d.sub.Interval = tmpl.Interval
	d.sub.LocalCSeq = max(d.sub.LocalCSeq, tmpl.LocalCSeq)
	s := d.sub.clone()
	if d.ended || s.State == StateTerminated {
		// Ended by a NOTIFY already: take back a record Subscribe may
		// have written meanwhile.
		return s, e.cfg.Store.Delete(ctx, s.ID)
	}
	err := e.cfg.Store.Put(ctx, s)
	e.armLocked(d, refreshDelay(granted), func() { e.refresh(d) })
	return s, err
}

// dropForks ends dialogs a NOTIFY created for a SUBSCRIBE that then failed.
func (e *Endpoint) dropForks(id DialogID, reason string) {
	e.dialogs.mu.Lock()
	var ds []*dialog
	for k, d := range e.dialogs.m {
		if k.CallID == id.CallID && k.LocalTag == id.LocalTag {
			ds = append(ds, d)
		}
	}
	e.dialogs.mu.Unlock()
	for _, d := range ds {
		e.end(e.base, d, reason)
	}
}

// refreshDelay is when to refresh a subscription granted for d: a third
// before expiry, at most five minutes early.
func refreshDelay(d time.Duration) time.Duration {
	return d - min(d/3, 5*time.Minute)
}

// refresh re-SUBSCRIBEs in the dialog (RFC 6665 §4.1.2.2).
func (e *Endpoint) refresh(d *dialog) {
	ctx, cancel := context.WithTimeout(e.base, e.cfg.RequestTimeout)
	defer cancel()
	s := d.snapshot()
	res, err := e.resubscribe(ctx, d, s.Interval)
	if errors.Is(err, ErrClosed) || e.base.Err() != nil {
		return
	}
	if err == nil && res.StatusCode == 423 {
		if m, perr := strconv.Atoi(header(res, "Min-Expires", "")); perr == nil && m > 0 {
			d.mu.Lock()
			d.sub.Interval = time.Duration(m) * time.Second
			d.mu.Unlock()
			res, err = e.resubscribe(ctx, d, time.Duration(m)*time.Second)
		}
	}
	switch {
	case err != nil:
		e.log.Warn("sip: refresh failed", "dialog", s.ID.String(), "err", err)
		if e.end(ctx, d, "refresh failed") {
			e.ended(s, err.Error())
		}
	case res.StatusCode == 481:
		if e.end(ctx, d, "refresh answered 481") {
			e.ended(s, "notifier answered 481 to the refresh")
		}
	case res.StatusCode >= 300:
		// The subscription still runs until it expires (RFC 6665
		// §4.1.2.2); end it then.
		e.log.Warn("sip: refresh refused", "dialog", s.ID.String(), "status", res.StatusCode)
		d.mu.Lock()
		e.armLocked(d, time.Until(d.sub.Expires), func() {
			if e.end(e.base, d, "expired") {
				e.ended(s, fmt.Sprintf("refresh refused with %d, subscription expired", res.StatusCode))
			}
		})
		d.mu.Unlock()
	default:
		granted := s.Interval
		if n, perr := parseExpires(res); perr == nil && n >= 0 {
			granted = time.Duration(n) * time.Second
		}
		d.mu.Lock()
		d.sub.Expires = time.Now().Add(granted)
		s = d.sub.clone()
		err := e.cfg.Store.Put(ctx, s)
		e.armLocked(d, refreshDelay(granted), func() { e.refresh(d) })
		d.mu.Unlock()
		if err != nil {
			e.log.Error("sip: store write failed after refresh", "dialog", s.ID.String(), "err", err)
		}
		e.logDialog("sip: dialog refreshed", s)
	}
}

// Refresh re-SUBSCRIBEs a subscription we created now, ahead of its
// timer, and waits for the outcome. The notifier answers a refresh with a
// NOTIFY of the full current state (RFC 6665 §4.2.1.2): this is how state
// that was not kept (e.g. across a restart) is fetched again within the
// dialog. Outcomes are handled as for a timed refresh (481 ends the dialog).
func (e *Endpoint) Refresh(id DialogID) error {
	d, ok := e.dialogs.get(id)
	if !ok || d.snapshot().Role != RoleSubscriber {
		return fmt.Errorf("sip: refresh %s: %w", id, ErrNoDialog)
	}
	if !e.track() {
		return fmt.Errorf("sip: refresh %s: %w", id, ErrClosed)
	}
	defer e.wg.Done()
	e.refresh(d)
	return nil
}

// resubscribe sends one in-dialog SUBSCRIBE asking for dur (0 unsubscribes).
func (e *Endpoint) resubscribe(ctx context.Context, d *dialog, dur time.Duration) (*sip.Response, error) {
	if err := d.lock(ctx); err != nil {
		return nil, fmt.Errorf("sip: SUBSCRIBE waiting for the previous request: %w: %w", ErrTimeout, err)
	}
	defer d.unlock()
	d.mu.Lock()
	d.sub.LocalCSeq++
	s := d.sub.clone()
	d.mu.Unlock()
	req, dest, err := e.inDialogRequest(s, sip.SUBSCRIBE)
	if err != nil {
		return nil, err
	}
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(seconds(dur))))
	return e.do(ctx, req, dest)
}

// Unsubscribe ends a subscription we created (SUBSCRIBE with Expires: 0).
// The dialog leaves the Store at once and still takes the notifier's final
// NOTIFY for a while.
func (e *Endpoint) Unsubscribe(ctx context.Context, id DialogID) error {
	d, ok := e.dialogs.get(id)
	if !ok || d.snapshot().Role != RoleSubscriber {
		return fmt.Errorf("sip: unsubscribe %s: %w", id, ErrNoDialog)
	}
	if err := e.cfg.Store.Delete(ctx, id); err != nil {
		return fmt.Errorf("sip: unsubscribe %s: store: %w", id, err)
	}
	d.mu.Lock()
	d.leaving = true
	e.armLocked(d, lingerAfterUnsubscribe, func() { e.end(e.base, d, "unsubscribed") })
	d.mu.Unlock()
	res, err := e.resubscribe(ctx, d, 0)
	if err != nil {
		e.log.Warn("sip: unsubscribe failed", "dialog", id.String(), "err", err)
		e.end(ctx, d, "unsubscribe failed")
		return err
	}
	if res.StatusCode >= 300 {
		e.log.Warn("sip: unsubscribe refused", "dialog", id.String(), "status", res.StatusCode, "reason", res.Reason)
		e.end(ctx, d, "unsubscribe refused")
		return &StatusError{Method: sip.SUBSCRIBE, Status: res.StatusCode, Reason: res.Reason}
	}
	e.logDialog("sip: unsubscribed, waiting for the final NOTIFY", d.snapshot())
	return nil
}

// onNotify handles NOTIFY as subscriber (RFC 6665 §4.1.3).
func (e *Endpoint) onNotify(ctx context.Context, req *sip.Request) (*sip.Response, func()) {
	pkg, eventID := parseEvent(header(req, "Event", "o"))
	if pkg == "" {
		return reply(req, 400, "Missing Event header"), nil
	}
	stateHdr := header(req, "Subscription-State", "")
	if stateHdr == "" {
		return reply(req, 400, "Missing Subscription-State header"), nil
	}
	st, err := parseSubState(stateHdr)
	if err != nil {
		return reply(req, 400, "Bad Subscription-State: "+err.Error()), nil
	}
	id := DialogID{CallID: callID(req), LocalTag: tagOf(req.To().Params), RemoteTag: tagOf(req.From().Params)}
	d, ok := e.dialogs.get(id)
	if !ok {
		var res *sip.Response
		d, res = e.dialogFromNotify(ctx, req, id, pkg)
		if res != nil {
			return res, nil
		}
	}
	d.mu.Lock()
	s := d.sub
	if s.Role != RoleSubscriber {
		d.mu.Unlock()
		return reply(req, 481, ""), nil
	}
	if !strings.EqualFold(s.Event, pkg) || s.EventID != eventID {
		d.mu.Unlock()
		return e.badEvent(req), nil
	}
	seq := req.CSeq().SeqNo
	if s.RemoteCSeq != 0 && seq <= s.RemoteCSeq {
		d.mu.Unlock()
		return reply(req, 500, "CSeq Out of Order"), nil
	}
	d.sub.RemoteCSeq = seq
	changed := false
	if c := req.Contact(); c != nil && c.Address.Host != "" && c.Address.String() != s.RemoteTarget {
		d.sub.RemoteTarget = c.Address.String() // NOTIFY is a target refresh
		changed = true
	}
	if st.state != s.State {
		changed = true
	}
	d.sub.State = st.state
	if st.state == StateTerminated {
		d.sub.Reason = st.reason
	} else if st.expires >= 0 && !d.leaving {
		// The notifier may shorten the subscription (RFC 6665 §4.1.3).
		if exp := time.Now().Add(time.Duration(st.expires) * time.Second); exp.Before(d.sub.Expires) {
			d.sub.Expires = exp
			e.armLocked(d, refreshDelay(time.Duration(st.expires)*time.Second), func() { e.refresh(d) })
			changed = true
		}
	}
	snap := d.sub.clone()
	var perr error
	if changed && st.state != StateTerminated && !d.ended && !d.leaving {
		perr = e.cfg.Store.Put(ctx, snap)
	}
	d.mu.Unlock()
	if perr != nil {
		e.log.Error("sip: store write failed on NOTIFY", "dialog", id.String(), "err", perr)
		return reply(req, 500, "Subscription Not Stored"), nil
	}
	status := e.cfg.Handler.HandleNotify(ctx, snap, req)
	if status < 200 || status > 699 {
		e.log.Error("sip: handler returned an invalid final status", "status", status, "call-id", id.CallID)
		status = 500
	}
	if st.state == StateTerminated {
		reason := st.reason
		if reason == "" {
			reason = "terminated by notifier"
		}
		e.end(ctx, d, reason)
	} else if changed {
		e.logDialog("sip: dialog updated by NOTIFY", snap)
	}
	return reply(req, status, ""), nil
}

// dialogFromNotify creates the dialog from a NOTIFY that overtook the 2xx
// to our SUBSCRIBE (RFC 6665 §4.1.2.4), or answers 481.
func (e *Endpoint) dialogFromNotify(ctx context.Context, req *sip.Request, id DialogID, pkg string) (*dialog, *sip.Response) {
	e.dialogs.mu.Lock()
	tmpl, ok := e.dialogs.pending[pendingKey{id.CallID, id.LocalTag}]
	e.dialogs.mu.Unlock()
	if !ok || id.RemoteTag == "" {
		e.log.Info("sip: NOTIFY for unknown dialog", "dialog", id.String())
		return nil, reply(req, 481, "")
	}
	if !strings.EqualFold(tmpl.Event, pkg) {
		return nil, e.badEvent(req)
	}
	c := req.Contact()
	if c == nil || c.Address.Host == "" {
		return nil, reply(req, 400, "Missing Contact header")
	}
	s := tmpl.clone()
	s.ID = id
	s.RemoteTarget = c.Address.String()
	s.RouteSet = routeSet(req, false) // we are the UAS of this NOTIFY (RFC 3261 §12.1.1)
	if err := e.cfg.Store.Put(ctx, s); err != nil {
		e.log.Error("sip: store write failed on early NOTIFY", "dialog", id.String(), "err", err)
		return nil, reply(req, 500, "Subscription Not Stored")
	}
	d := newDialog(s)
	e.dialogs.mu.Lock()
	if old, ok := e.dialogs.m[id]; ok {
		e.dialogs.mu.Unlock()
		return old, nil // another NOTIFY of this dialog got here first
	}
	e.dialogs.m[id] = d
	e.dialogs.early[id] = d
	e.dialogs.mu.Unlock()
	d.mu.Lock()
	e.armLocked(d, refreshDelay(time.Until(s.Expires)), func() { e.refresh(d) })
	d.mu.Unlock()
	e.logDialog("sip: dialog created by NOTIFY before the 2xx", s)
	return d, nil
}
