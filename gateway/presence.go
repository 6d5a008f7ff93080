package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xgw-gateway/xgw/gateway/sip"
	"github.com/xgw-gateway/xgw/gateway/translate"
	"github.com/xgw-gateway/xgw/gateway/xmpp"
)

// Presence (RFC 7248) in both directions. The gateway is the XMPP server
// of the SIP users and the SIP presence agent of the XMPP users, so each
// subscription is one SUBSCRIBE dialog (gateway/sip) between an XMPP user X
// and a SIP user U; translate.SubscriptionMapping and
// translate.PresenceMapping are the wire rules this file applies.
//
// X watches U (RFC 7248 §4, we are the SIP subscriber):
//
//	event                                  SIP                                XMPP to X (from U)
//	X subscribe, no dialog                 SUBSCRIBE Expires 3600 via Edge    - (a refusal: presence error, see below)
//	X subscribe, dialog active             -                                  subscribed + last presence
//	X subscribe, dialog pending            -                                  - (still waiting for U)
//	NOTIFY active, first                   200                                subscribed (+ PIDF as presence)
//	NOTIFY active                          200                                PIDF as presence (show/status)
//	NOTIFY pending                         200                                - (XMPP has no pending answer)
//	NOTIFY terminated rejected|noresource| 200, dialog ends                   unsubscribed (+ unavailable if
//	       invariant|no reason                                                 presence was shown)
//	NOTIFY terminated deactivated|timeout| 200, re-SUBSCRIBE after            unavailable while re-subscribing
//	       probation|giveup                retry-after (RFC 6665 §4.1.3)
//	X unsubscribe                          SUBSCRIBE Expires 0 in the dialog  unavailable (RFC 6121 §3.3.3)
//	X probe, dialog active                 - (refresh SUBSCRIBE when U's       last presence from a NOTIFY
//	                                       presence is unknown, e.g. restart)
//	X probe, no dialog                     SUBSCRIBE (re-creates what X's     as for subscribe
//	                                       server believes exists)
//	SUBSCRIBE 4xx-6xx, timeout, no Edge    -                                  presence type='error', condition
//	                                                                          of RFC 7247 §6.2 (ConditionForStatus)
//	dialog ended (expiry, failed refresh)  -                                  unavailable
//
// U watches X (RFC 7248 §5, we are the SIP notifier):
//
//	event                                  XMPP to X (from U)                 SIP
//	SUBSCRIBE new                          subscribe                          202, NOTIFY pending
//	SUBSCRIBE new, pair already active     -                                  200, NOTIFY active + PIDF
//	SUBSCRIBE fetch (Expires 0)            probe                              200/202, NOTIFY terminated (+ PIDF)
//	SUBSCRIBE refresh                      probe when X's presence is unknown 200, NOTIFY state + PIDF
//	SUBSCRIBE Expires 0                    unsubscribe (last dialog of pair)  200, NOTIFY terminated;timeout
//	X subscribed                           -                                  NOTIFY active (+ PIDF when known)
//	X unsubscribed                         -                                  NOTIFY terminated;reason=rejected
//	X presence error (pending dialog)      -                                  NOTIFY terminated;reason=noresource
//	X available/unavailable (show/status)  -                                  NOTIFY active + PIDF, every active
//	                                                                          dialog of the pair
//	X available/unavailable, no SIP user   -                                  - (not kept, logged)
//	watching X
//	dialog expired                         -                                  (HandleEnded: state dropped)
//
// State (presenceBook, in memory): the dialogs themselves are the
// endpoint's (ep.Subscriptions(), persisted in subscriptions.db by
// gateway/sip and resumed on start), so after a restart every pair comes
// back from there; the book only caches each dialog's pair of users. It
// adds what SIP does not keep: X's presence per resource (the latest
// available resource wins; re-learnt from X's server by a probe when a
// refresh finds it unknown; kept only while a notifier dialog watches X,
// dropped when the last one ends, at most maxXMPPResources resources per
// user and maxXMPPUsers users), U's presence from the last NOTIFY with a PIDF
// body (after a restart, X's next probe refreshes the dialog, whose NOTIFY
// brings it back), which subscriber dialogs
// already told X 'subscribed' (after a restart X may get it once more,
// which RFC 6121 §3.1.6 has X's server ignore), dialogs we are leaving,
// and notifier dialogs whose first NOTIFY may not be out yet.
//
// Stanzas from XMPP run on a lane per pair of users (lanes.go): in order
// for the pair, concurrently across pairs, never on the partner's stream.

// presenceBook is the gateway's presence state; the zero value is ready.
type presenceBook struct {
	mu      sync.Mutex
	xmpp    map[string]*xmppPresence      // X (bare) -> its resources
	sip     map[string]translate.Presence // U (bare) -> from the last NOTIFY with a body
	told    map[sip.DialogID]bool         // subscriber dialogs that told X 'subscribed'
	leaving map[sip.DialogID]bool         // subscriber dialogs we unsubscribed
	fresh   map[sip.DialogID]freshDialog  // notifier dialogs whose first NOTIFY may be pending
	pairs   map[sip.DialogID]presencePair // cache of each dialog's users
	resub   map[sip.DialogID]*time.Timer  // scheduled re-subscriptions
	seq     uint64                        // orders presence updates
}

// presencePair is the two users of a dialog, bare JIDs.
type presencePair struct{ x, u jid.JID }

func (p presencePair) key() string { return p.x.String() + " " + p.u.String() }

// freshDialog is a notifier dialog created by a SUBSCRIBE we accepted: its
// first NOTIFY leaves after our answer, and a NOTIFY we send must follow it
// (RFC 6665 §4.2.1.2: the subscriber learns pending before active).
type freshDialog struct {
	pair presencePair
	cseq uint32    // the dialog's local CSeq before its first NOTIFY
	at   time.Time // entries of dialogs that were never created expire
}

// freshTTL bounds how long a fresh entry is kept: the first NOTIFY leaves
// within a handler timeout, or the dialog was never created.
const freshTTL = time.Minute

// xmppPresence is one XMPP user's presence per resource.
type xmppPresence struct {
	res map[string]stampedPresence
	// last is the latest presence of any resource, for the unavailable
	// status text once every resource left.
	last stampedPresence
}

type stampedPresence struct {
	p   translate.Presence
	seq uint64
}

func (b *presenceBook) init() {
	if b.xmpp == nil {
		b.xmpp = map[string]*xmppPresence{}
		b.sip = map[string]translate.Presence{}
		b.told = map[sip.DialogID]bool{}
		b.leaving = map[sip.DialogID]bool{}
		b.fresh = map[sip.DialogID]freshDialog{}
		b.pairs = map[sip.DialogID]presencePair{}
		b.resub = map[sip.DialogID]*time.Timer{}
	}
}

// Bounds of the XMPP side of the book: any allowed peer can send presence
// from as many JIDs and resources as it likes.
const (
	maxXMPPUsers     = 100_000 // XMPP users whose presence is kept
	maxXMPPResources = 32      // resources kept per user; the oldest goes first
)

// setXMPP records a presence of X's resource and returns X's aggregate:
// the latest available resource, else unavailable. watched says a SIP user
// watches X (a notifier dialog exists or is being created): without one
// nothing is kept, X's entry is dropped and agg is the zero Presence.
// kept is false when nothing was recorded: X is not watched, or
// maxXMPPUsers others are tracked (agg is then p alone, still relayed).
func (b *presenceBook) setXMPP(x jid.JID, resource string, p translate.Presence, watched bool) (agg translate.Presence, kept bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	b.seq++
	if !watched {
		delete(b.xmpp, x.String())
		return translate.Presence{}, false
	}
	xp := b.xmpp[x.String()]
	kept = xp != nil || len(b.xmpp) < maxXMPPUsers
	if xp == nil {
		xp = &xmppPresence{res: map[string]stampedPresence{}}
		if kept {
			b.xmpp[x.String()] = xp
		}
	}
	xp.set(resource, stampedPresence{p: p, seq: b.seq})
	return xp.aggregate(), kept
}

// set applies one resource's presence, keeping at most maxXMPPResources.
func (xp *xmppPresence) set(resource string, sp stampedPresence) {
	xp.last = sp
	switch {
	case sp.p.Type == stanza.UnavailablePresence && resource == "":
		clear(xp.res)
	case sp.p.Type == stanza.UnavailablePresence:
		delete(xp.res, resource)
	default:
		if _, ok := xp.res[resource]; !ok && len(xp.res) >= maxXMPPResources {
			oldest, seq := "", uint64(0)
			for r, o := range xp.res {
				if seq == 0 || o.seq < seq {
					oldest, seq = r, o.seq
				}
			}
			delete(xp.res, oldest)
		}
		xp.res[resource] = sp
	}
}

// dropXMPP forgets X's presence once no SIP user watches X.
func (b *presenceBook) dropXMPP(x jid.JID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	delete(b.xmpp, x.String())
}

// freshFor reports whether a notifier dialog watching X is being created.
func (b *presenceBook) freshFor(x jid.JID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	for _, f := range b.fresh {
		if f.pair.x.Equal(x) && time.Since(f.at) <= freshTTL {
			return true
		}
	}
	return false
}

func (xp *xmppPresence) aggregate() translate.Presence {
	var best stampedPresence
	for _, sp := range xp.res {
		if sp.seq > best.seq {
			best = sp
		}
	}
	if best.seq == 0 {
		p := xp.last.p
		p.Type, p.Show = stanza.UnavailablePresence, ""
		return p
	}
	return best.p
}

// xmppPresenceOf is X's aggregate presence, ok false when never seen.
func (b *presenceBook) xmppPresenceOf(x jid.JID) (translate.Presence, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	xp := b.xmpp[x.String()]
	if xp == nil {
		return translate.Presence{}, false
	}
	return xp.aggregate(), true
}

func (b *presenceBook) setSIP(u jid.JID, p translate.Presence) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	b.sip[u.String()] = p
}

func (b *presenceBook) sipPresenceOf(u jid.JID) (translate.Presence, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	p, ok := b.sip[u.String()]
	return p, ok
}

// markTold records that X got 'subscribed' for dialog id.
func (b *presenceBook) markTold(id sip.DialogID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	b.told[id] = true
}

func (b *presenceBook) wasTold(id sip.DialogID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	return b.told[id]
}

func (b *presenceBook) setLeaving(id sip.DialogID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	b.leaving[id] = true
}

func (b *presenceBook) isLeaving(id sip.DialogID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	return b.leaving[id]
}

func (b *presenceBook) addFresh(id sip.DialogID, f freshDialog) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	for old, o := range b.fresh {
		if time.Since(o.at) > freshTTL {
			delete(b.fresh, old)
		}
	}
	f.at = time.Now()
	b.fresh[id] = f
}

func (b *presenceBook) dropFresh(id sip.DialogID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	delete(b.fresh, id)
}

// freshOf lists the fresh notifier dialogs of a pair.
func (b *presenceBook) freshOf(p presencePair) map[sip.DialogID]freshDialog {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	out := map[sip.DialogID]freshDialog{}
	for id, f := range b.fresh {
		if f.pair.key() == p.key() {
			out[id] = f
		}
	}
	return out
}

func (b *presenceBook) freshCSeq(id sip.DialogID) (uint32, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	f, ok := b.fresh[id]
	return f.cseq, ok
}

func (b *presenceBook) pair(id sip.DialogID) (presencePair, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	p, ok := b.pairs[id]
	return p, ok
}

func (b *presenceBook) setPair(id sip.DialogID, p presencePair) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	b.pairs[id] = p
}

// forget drops everything kept for an ended dialog.
func (b *presenceBook) forget(id sip.DialogID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	delete(b.told, id)
	delete(b.leaving, id)
	delete(b.fresh, id)
	delete(b.pairs, id)
}

// setResub keeps the timer of a scheduled re-subscription, replacing (and
// stopping) an earlier one for the same dialog.
func (b *presenceBook) setResub(id sip.DialogID, t *time.Timer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	if old := b.resub[id]; old != nil {
		old.Stop()
	}
	if t == nil {
		delete(b.resub, id)
		return
	}
	b.resub[id] = t
}

// The decision rules, kept free of I/O so the tables in
// presence_internal_test.go can check them.

// xmppAction is what an XMPP subscription stanza from X to U makes the
// gateway do, given the subscriber dialogs of the pair.
type xmppAction int

const (
	actNone            xmppAction = iota // nothing to send (logged)
	actSubscribe                         // new SUBSCRIBE through the Edge
	actReplySubscribed                   // answer 'subscribed' and the last presence
	actReplyPresence                     // answer the last presence (probe)
	actUnsubscribe                       // SUBSCRIBE Expires: 0 in each dialog
)

func (a xmppAction) String() string {
	return [...]string{"none", "subscribe", "reply subscribed", "reply presence", "unsubscribe"}[a]
}

// decideWatch maps an XMPP subscribe, probe or unsubscribe from X to U
// (RFC 7248 §4) to the gateway's action, given the states of the
// subscriber dialogs of the pair.
func decideWatch(t stanza.PresenceType, states []sip.State) xmppAction {
	active, pending := false, false
	for _, s := range states {
		active = active || s == sip.StateActive
		pending = pending || s == sip.StatePending
	}
	switch t {
	case stanza.SubscribePresence:
		switch {
		case active:
			return actReplySubscribed
		case pending:
			return actNone
		}
		return actSubscribe
	case stanza.ProbePresence:
		switch {
		case active:
			return actReplyPresence
		case pending:
			return actNone
		}
		return actSubscribe
	case stanza.UnsubscribePresence:
		if len(states) > 0 {
			return actUnsubscribe
		}
	}
	return actNone
}

// notifyOutcome is what one NOTIFY on a dialog we created tells X.
type notifyOutcome struct {
	Stanzas     []stanza.PresenceType // in order; AvailablePresence means "the PIDF as presence"
	Told        bool                  // X has now been told 'subscribed'
	Resubscribe bool                  // send a new SUBSCRIBE (RFC 6665 §4.1.3)
}

// decideNotify maps a NOTIFY's Subscription-State (RFC 7248 §4.2,
// translate.PresenceTypeForNotify) to the stanzas for X. told: X was
// already told 'subscribed' on this dialog; hasPIDF: the NOTIFY carried a
// presence document; leaving: we unsubscribed, so this is the final NOTIFY.
func decideNotify(st translate.SubscriptionState, told, hasPIDF, leaving bool) notifyOutcome {
	t, ok, resub := translate.PresenceTypeForNotify(st)
	out := notifyOutcome{Told: told}
	switch {
	case leaving:
		// We asked for the end; X already got unavailable when it
		// unsubscribed.
		out.Told = false
	case ok && t == stanza.SubscribedPresence:
		if !told {
			out.Stanzas = append(out.Stanzas, stanza.SubscribedPresence)
			out.Told = true
		}
		if hasPIDF {
			out.Stanzas = append(out.Stanzas, stanza.AvailablePresence)
		}
	case ok && t == stanza.UnsubscribedPresence:
		// RFC 6121 §3.2.2: unsubscribed, then unavailable from the contact.
		out.Stanzas = append(out.Stanzas, stanza.UnsubscribedPresence)
		if told {
			out.Stanzas = append(out.Stanzas, stanza.UnavailablePresence)
		}
		out.Told = false
	case resub:
		if told {
			out.Stanzas = append(out.Stanzas, stanza.UnavailablePresence)
		}
		out.Told = false
		out.Resubscribe = true
	}
	return out
}

// notifyFor is the Notification that an XMPP stanza from X makes the
// gateway send on a notifier dialog in state cur (RFC 7248 §5). ok is
// false when the dialog gets nothing (presence is not shown while
// pending; approval of an active dialog is a repeat).
func notifyFor(t stanza.PresenceType, cur sip.State) (n sip.Notification, ok bool) {
	act, err := translate.SIPActionFor(t)
	if err != nil || act.Method != gosip.NOTIFY {
		return sip.Notification{}, false
	}
	switch t {
	case stanza.SubscribedPresence:
		if cur != sip.StatePending {
			return sip.Notification{}, false
		}
	case stanza.AvailablePresence, stanza.UnavailablePresence:
		if cur != sip.StateActive {
			return sip.Notification{}, false
		}
	}
	return sip.Notification{State: sip.State(act.State.State), Reason: act.State.Reason}, true
}

// XMPP to the gateway.

// presenceFromXMPP gets every presence stanza addressed to one of our
// users. It queues the stanza on the lane of its pair of users (lanes.go)
// and returns at once: SIP round trips (SUBSCRIBE, NOTIFY) never hold the
// partner's stream, and the stanzas of one pair keep their order. The lane
// bounces a failure to the sender itself (never a type='error' one).
func (s *Server) presenceFromXMPP(ctx context.Context, st *xmpp.Stanza) error {
	if !s.enter() {
		s.log.Info("xmpp presence refused: gateway shutting down", "from", st.From.String(), "to", st.To.String(), "type", st.Type)
		return &xmpp.Error{Type: xmpp.ErrorTypeWait, Condition: xmpp.CondServiceUnavailable, Text: "gateway shutting down"}
	}
	// The job outlives the stream's context; the SIP requests are bounded
	// by the endpoint's request timeout.
	bg := context.WithoutCancel(ctx)
	err := s.lanes.submit(ctx, "presence "+st.From.Bare().String()+" "+st.To.Bare().String(), func() {
		defer s.exit()
		if err := s.presenceJob(bg, st); err != nil && st.Type != string(stanza.ErrorPresence) {
			s.bounceToXMPP(bg, st, err)
		}
	})
	if err != nil {
		s.exit()
		return &xmpp.Error{Type: xmpp.ErrorTypeWait, Condition: xmpp.CondResourceConstraint,
			Text: "too many stanzas wait for the SIP side"}
	}
	return nil
}

// presenceJob handles one presence stanza from X to U; an *xmpp.Error
// return is bounced to X.
func (s *Server) presenceJob(ctx context.Context, st *xmpp.Stanza) error {
	if !s.waitResumed(ctx) {
		s.log.Info("xmpp presence refused: SIP subscriptions not reloaded yet", "from", st.From.String(), "to", st.To.String(), "type", st.Type)
		return &xmpp.Error{Type: xmpp.ErrorTypeWait, Condition: xmpp.CondServiceUnavailable, Text: "gateway starting"}
	}
	x, u := st.From.Bare(), st.To.Bare()
	pair := presencePair{x: x, u: u}
	typ := stanza.PresenceType(st.Type)
	switch typ {
	case stanza.SubscribePresence, stanza.ProbePresence, stanza.UnsubscribePresence:
		return s.xmppWatch(ctx, st, typ, pair)
	case stanza.SubscribedPresence, stanza.UnsubscribedPresence:
		s.xmppAuthorize(ctx, typ, pair)
		return nil
	case stanza.ErrorPresence:
		s.xmppPresenceError(ctx, st, pair)
		return nil
	case stanza.AvailablePresence, stanza.UnavailablePresence:
		return s.xmppStatus(ctx, st, pair)
	}
	s.log.Info("xmpp presence refused: unknown type", "from", st.From.String(), "to", st.To.String(), "type", st.Type)
	return &xmpp.Error{Type: xmpp.ErrorTypeModify, Condition: xmpp.CondBadRequest,
		Text: fmt.Sprintf("presence type %q; expected one of RFC 6121 §4.7.1", st.Type)}
}

// resumeWait bounds how long presence from XMPP waits for the SIP side to
// reload its subscriptions after a start (a bbolt read: milliseconds).
const resumeWait = 10 * time.Second

// waitResumed holds presence that arrives while the SIP endpoint is still
// reloading the stored dialogs, which would otherwise look absent.
func (s *Server) waitResumed(ctx context.Context) bool {
	t := time.NewTimer(resumeWait)
	defer t.Stop()
	select {
	case <-s.ep.Resumed():
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

// xmppWatch handles subscribe, probe and unsubscribe from X for U.
func (s *Server) xmppWatch(ctx context.Context, st *xmpp.Stanza, typ stanza.PresenceType, pair presencePair) error {
	subs := s.dialogsOf(sip.RoleSubscriber, pair)
	states := make([]sip.State, 0, len(subs))
	for _, sub := range subs {
		if !s.pres.isLeaving(sub.ID) {
			states = append(states, sub.State)
		}
	}
	act := decideWatch(typ, states)
	s.log.Info("xmpp presence", "from", st.From.String(), "to", st.To.String(), "type", string(typ), "dialogs", len(states), "action", act.String())
	switch act {
	case actSubscribe:
		return s.subscribeSIP(ctx, st, pair)
	case actReplySubscribed:
		s.toXMPP(ctx, translate.Presence{From: pair.u, To: pair.x, Type: stanza.SubscribedPresence})
		fallthrough
	case actReplyPresence:
		if p, ok := s.pres.sipPresenceOf(pair.u); ok {
			p.From, p.To = pair.u, pair.x
			s.toXMPP(ctx, p)
			return nil
		}
		// Not kept (a restart): refresh the dialog, and the NOTIFY that
		// answers it (RFC 6665 §4.2.1.2) brings the state to X.
		for _, sub := range subs {
			if sub.State == sip.StateActive && !s.pres.isLeaving(sub.ID) {
				s.log.Info("xmpp probe: SIP user's presence unknown, refreshing the subscription", "from", pair.x.String(), "to", pair.u.String(), "dialog", sub.ID.String())
				if err := s.ep.Refresh(sub.ID); err != nil {
					s.log.Warn("sip refresh failed", "dialog", sub.ID.String(), "err", err)
				}
				break
			}
		}
	case actUnsubscribe:
		for _, sub := range subs {
			s.pres.setLeaving(sub.ID)
			if err := s.ep.Unsubscribe(ctx, sub.ID); err != nil {
				s.log.Warn("sip unsubscribe failed; the dialog ends anyway", "dialog", sub.ID.String(), "err", err)
			}
		}
		// RFC 6121 §3.3.3: the contact's server sends unavailable.
		s.toXMPP(ctx, translate.Presence{From: pair.u, To: pair.x, Type: stanza.UnavailablePresence})
	}
	return nil
}

// subscribeSIP creates the SUBSCRIBE dialog for X watching U (RFC 7248
// §4.1). A refusal or failure comes back to X as a presence error.
func (s *Server) subscribeSIP(ctx context.Context, st *xmpp.Stanza, pair presencePair) error {
	act, _ := translate.SIPActionFor(stanza.SubscribePresence)
	from, err1 := s.mapper.URIFromJID(pair.x, translate.SideXMPP)
	to, err2 := s.mapper.URIFromJID(pair.u, translate.SideSIP)
	if err := errors.Join(err1, err2); err != nil {
		return s.presenceRefused(st, err)
	}
	sub, err := s.ep.Subscribe(ctx, sip.SubscribeRequest{From: from, To: to, Event: "presence",
		Expires: time.Duration(act.Expires) * time.Second, Accept: []string{translate.ContentTypePIDF}})
	if err != nil {
		return s.presenceRefused(st, err)
	}
	if sub.State != sip.StateTerminated { // a NOTIFY may have ended it already
		s.pres.setPair(sub.ID, pair)
	}
	s.log.Info("sip subscription created", "from", pair.x.String(), "to", pair.u.String(), "dialog", sub.ID.String(), "state", string(sub.State))
	return nil
}

// presenceRefused maps a failed SUBSCRIBE to the presence error for X
// (RFC 7247 §6.2 for SIP statuses; the gateway failures of translate).
func (s *Server) presenceRefused(st *xmpp.Stanza, err error) error {
	var e *xmpp.Error
	var se *sip.StatusError
	if errors.As(err, &se) {
		cond, typ := translate.ConditionForStatus(se.Status)
		e = &xmpp.Error{Type: string(typ), Condition: string(cond), Text: fmt.Sprintf("the SIP side answered %d %s", se.Status, se.Reason)}
	} else {
		var ae *translate.AddressError
		if !errors.As(err, &ae) {
			err = edgeFailure(err)
		}
		m := translate.MapError(err)
		e = &xmpp.Error{Type: string(m.Type), Condition: string(m.Condition), Text: m.Text}
		for _, sentinel := range []error{translate.ErrEdgeTimeout, translate.ErrEdgeUnreachable} {
			if errors.Is(err, sentinel) {
				e.Text = sentinel.Error() // not our internal addresses
			}
		}
	}
	s.log.Info("xmpp presence bounced", "from", st.From.String(), "to", st.To.String(), "type", st.Type,
		"condition", e.Condition, "cause", err)
	return e
}

// xmppAuthorize handles X's answer to U's subscription: subscribed
// approves pending dialogs, unsubscribed ends every dialog of the pair.
func (s *Server) xmppAuthorize(ctx context.Context, typ stanza.PresenceType, pair presencePair) {
	ids := map[sip.DialogID]sip.State{}
	for _, sub := range s.dialogsOf(sip.RoleNotifier, pair) {
		ids[sub.ID] = sub.State
	}
	// A dialog still being created (its SUBSCRIBE's answer not sent yet)
	// is not live yet: X's server may approve at once when X approved U
	// before.
	for id := range s.pres.freshOf(pair) {
		if _, ok := ids[id]; !ok {
			ids[id] = sip.StatePending
		}
	}
	if len(ids) == 0 {
		s.log.Info("xmpp presence ignored: no SIP subscription of this pair", "from", pair.x.String(), "to", pair.u.String(), "type", string(typ))
		return
	}
	for id, state := range ids {
		n, ok := notifyFor(typ, state)
		if !ok {
			continue
		}
		if n.State == sip.StateActive {
			if p, known := s.pres.xmppPresenceOf(pair.x); known {
				s.withPIDF(&n, p, pair)
			}
		}
		s.notify(ctx, id, n, pair)
	}
}

// xmppPresenceError handles an error bounce of a presence we sent for U:
// a pending subscription to X cannot succeed (RFC 6665 noresource).
func (s *Server) xmppPresenceError(ctx context.Context, st *xmpp.Stanza, pair presencePair) {
	s.log.Info("xmpp presence error", "from", st.From.String(), "to", st.To.String(), "error", string(st.Inner))
	for _, sub := range s.dialogsOf(sip.RoleNotifier, pair) {
		if sub.State == sip.StatePending {
			s.notify(ctx, sub.ID, sip.Notification{State: sip.StateTerminated, Reason: "noresource"}, pair)
		}
	}
}

// xmppStatus relays X's presence to U's active dialogs as PIDF.
func (s *Server) xmppStatus(ctx context.Context, st *xmpp.Stanza, pair presencePair) error {
	head := stanza.Presence{From: st.From, To: st.To, ID: st.ID, Type: stanza.PresenceType(st.Type), Lang: st.Lang}
	p, err := translate.PresenceFromStanza(head, xml.NewDecoder(bytes.NewReader(st.Inner)))
	if err != nil {
		s.log.Info("xmpp presence refused", "from", st.From.String(), "to", st.To.String(), "cause", err)
		return &xmpp.Error{Type: xmpp.ErrorTypeModify, Condition: xmpp.CondBadRequest, Text: err.Error()}
	}
	watched := s.watched(pair.x, sip.DialogID{})
	agg, kept := s.pres.setXMPP(pair.x, st.From.Resourcepart(), p, watched)
	if !watched {
		// Nobody on the SIP side asked: keeping it would let any peer grow
		// the book (RFC 7248 §5 only relays presence to subscribers).
		s.log.Info("xmpp presence not kept: no SIP user watches the sender", "from", st.From.String(), "to", st.To.String(), "type", st.Type)
		return nil
	}
	if !kept {
		s.log.Warn("xmpp presence not kept: too many XMPP users tracked", "from", st.From.String(), "to", st.To.String(),
			"limit", maxXMPPUsers, "fix", "fewer subscriptions, or raise maxXMPPUsers")
	}
	s.view.SetXMPP(pair.x.String(), st.From.Resourcepart(), p, agg)
	subs := s.dialogsOf(sip.RoleNotifier, pair)
	sent := 0
	for _, sub := range subs {
		n, ok := notifyFor(agg.Type, sub.State)
		if !ok {
			continue
		}
		if err := s.withPIDF(&n, agg, pair); err != nil {
			return &xmpp.Error{Type: xmpp.ErrorTypeModify, Condition: xmpp.CondBadRequest, Text: err.Error()}
		}
		s.notify(ctx, sub.ID, n, pair)
		sent++
	}
	s.log.Info("xmpp presence relayed", "from", st.From.String(), "to", st.To.String(), "type", string(agg.Type),
		"show", agg.Show, "dialogs", len(subs), "notified", sent)
	return nil
}

// withPIDF puts X's presence p into n as a PIDF body (RFC 7248 §5).
func (s *Server) withPIDF(n *sip.Notification, p translate.Presence, pair presencePair) error {
	p.From, p.To = pair.x, pair.u
	body, err := s.mapper.PIDFFromPresence(&p)
	if err != nil {
		s.log.Info("no PIDF for the presence", "from", pair.x.String(), "cause", err)
		return err
	}
	n.ContentType, n.Body = translate.ContentTypePIDF, body
	return nil
}

// notify sends n on a notifier dialog, after its first NOTIFY.
func (s *Server) notify(ctx context.Context, id sip.DialogID, n sip.Notification, pair presencePair) {
	s.awaitFirstNotify(ctx, id)
	if err := s.ep.Notify(ctx, id, n); err != nil {
		s.log.Warn("sip NOTIFY failed", "dialog", id.String(), "from", pair.x.String(), "to", pair.u.String(),
			"state", string(n.State), "err", err)
		return
	}
	if n.State == sip.StateTerminated {
		s.pres.forget(id)
		s.unwatched(pair.x, id)
	}
}

// firstNotifyWait bounds how long a NOTIFY waits for the first NOTIFY of a
// dialog we just accepted; the endpoint sends that one right after its
// answer, so this is only reached when the dialog was never created.
const firstNotifyWait = 5 * time.Second

// awaitFirstNotify waits until a fresh notifier dialog's first NOTIFY has
// taken its CSeq: the endpoint sends one NOTIFY at a time per dialog, so
// ours then goes after it.
func (s *Server) awaitFirstNotify(ctx context.Context, id sip.DialogID) {
	cseq, ok := s.pres.freshCSeq(id)
	if !ok {
		return
	}
	deadline := time.Now().Add(firstNotifyWait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if sub, live := s.ep.Subscription(id); live && sub.LocalCSeq > cseq {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.pres.dropFresh(id)
}

// SIP to the gateway.

// subscribeFromSIP answers a SUBSCRIBE from the Edge for X (RFC 7248 §5).
func (s *Server) subscribeFromSIP(ctx context.Context, change sip.Change, sub sip.Subscription) sip.Answer {
	if !s.enter() {
		s.log.Info("sip SUBSCRIBE refused: gateway shutting down", "from", sub.RemoteURI, "to", sub.LocalURI, "status", 503)
		return sip.Answer{Status: 503}
	}
	defer s.exit()
	pair, err := s.pairOf(sub)
	if err != nil {
		m := translate.MapError(err)
		s.log.Info("sip SUBSCRIBE refused", "from", sub.RemoteURI, "to", sub.LocalURI, "status", m.Status, "cause", err)
		return sip.Answer{Status: m.Status}
	}
	log := s.log.With("change", change.String(), "from", pair.u.String(), "to", pair.x.String(), "dialog", sub.ID.String())
	others := 0
	active := false
	for _, o := range s.dialogsOf(sip.RoleNotifier, pair) {
		if o.ID != sub.ID {
			others++
			active = active || o.State == sip.StateActive
		}
	}
	switch change {
	case sip.ChangeUnsubscribe:
		s.pres.forget(sub.ID)
		s.unwatched(pair.x, sub.ID)
		if others == 0 {
			s.sendSubscription(ctx, pair, stanza.UnsubscribePresence, log)
		}
		log.Info("sip unsubscribe relayed", "other_dialogs", others)
		return sip.Answer{Status: 200}
	case sip.ChangeRefresh:
		return s.answerWithPresence(ctx, sub.State == sip.StateActive, pair, log)
	}
	expires := int(time.Until(sub.Expires).Round(time.Second) / time.Second)
	typ, _ := translate.PresenceTypeForSubscribe(expires, false)
	s.pres.setPair(sub.ID, pair)
	if active {
		// U is already authorized through another dialog (another device):
		// no new question for X. Presence NOTIFYs wait for the first one.
		s.pres.addFresh(sub.ID, freshDialog{pair: pair, cseq: sub.LocalCSeq})
		log.Info("sip SUBSCRIBE accepted: pair already active")
		return s.answerWithPresence(ctx, true, pair, log)
	}
	if typ == stanza.ProbePresence {
		// A fetch (RFC 6665 §4.4.3) from someone not yet authorized:
		// nothing to reveal, but X's server will answer the probe.
		s.sendSubscription(ctx, pair, stanza.ProbePresence, log)
		return sip.Answer{Status: 202}
	}
	// Registered before asking: X's server may approve at once.
	s.pres.addFresh(sub.ID, freshDialog{pair: pair, cseq: sub.LocalCSeq})
	if err := s.sendSubscription(ctx, pair, stanza.SubscribePresence, log); err != nil {
		s.pres.forget(sub.ID)
		s.unwatched(pair.x, sub.ID)
		status, _ := statusForSendError(err)
		log.Info("sip SUBSCRIBE refused", "status", status, "cause", err)
		return sip.Answer{Status: status}
	}
	log.Info("sip SUBSCRIBE accepted as pending, X asked")
	return sip.Answer{Status: 202}
}

// answerWithPresence accepts a SUBSCRIBE: active with X's presence when
// known (a probe asks X's server when not), else pending.
func (s *Server) answerWithPresence(ctx context.Context, active bool, pair presencePair, log interface{ Info(string, ...any) }) sip.Answer {
	if !active {
		return sip.Answer{Status: 202}
	}
	p, ok := s.pres.xmppPresenceOf(pair.x)
	if !ok {
		s.sendSubscription(ctx, pair, stanza.ProbePresence, log)
		return sip.Answer{Status: 200}
	}
	var n sip.Notification
	if err := s.withPIDF(&n, p, pair); err != nil {
		return sip.Answer{Status: 200}
	}
	return sip.Answer{Status: 200, ContentType: n.ContentType, Body: n.Body}
}

// sendSubscription sends a subscription stanza from U to X.
func (s *Server) sendSubscription(ctx context.Context, pair presencePair, t stanza.PresenceType, log interface{ Info(string, ...any) }) error {
	st := &xmpp.Stanza{Name: "presence", From: pair.u, To: pair.x, Type: string(t), ID: presenceID()}
	if err := s.xs.Send(ctx, st); err != nil {
		log.Info("xmpp presence not sent", "type", string(t), "err", err)
		return err
	}
	return nil
}

// notifyFromSIP handles a NOTIFY on a subscription we created for X.
func (s *Server) notifyFromSIP(ctx context.Context, sub sip.Subscription, req *gosip.Request) int {
	if !s.enter() {
		s.log.Info("sip NOTIFY refused: gateway shutting down", "call-id", callID(req), "status", 503)
		return 503
	}
	defer s.exit()
	pair, err := s.pairOf(sub)
	if err != nil {
		m := translate.MapError(err)
		s.log.Info("sip NOTIFY refused", "from", sub.RemoteURI, "to", sub.LocalURI, "status", m.Status, "cause", err)
		return m.Status
	}
	r := readNotify(req, pair, s.pres.wasTold(sub.ID), s.pres.isLeaving(sub.ID))
	if r.Cause != nil {
		s.log.Info("sip NOTIFY refused", "call-id", callID(req), "status", r.Status, "cause", r.Cause)
	}
	if r.State.State == "" {
		return r.Status
	}
	if r.PIDF != nil {
		s.pres.setSIP(pair.u, *r.PIDF)
		s.view.SetSIP(pair.u.String(), *r.PIDF)
	}
	if r.Out.Told {
		s.pres.markTold(sub.ID)
	}
	for _, p := range r.Stanzas {
		s.toXMPP(ctx, p)
	}
	s.log.Info("sip NOTIFY relayed", "from", pair.u.String(), "to", pair.x.String(), "state", r.State.String(),
		"stanzas", fmt.Sprint(r.Out.Stanzas), "resubscribe", r.Out.Resubscribe)
	if r.State.State == translate.SubTerminated {
		s.pres.forget(sub.ID)
	}
	if r.Out.Resubscribe {
		s.resubscribeLater(sub.ID, pair, r.State.RetryAfter)
	}
	return r.Status
}

// notifyResult is what a NOTIFY on a dialog we created means.
type notifyResult struct {
	State   translate.SubscriptionState // State "" when the header was unreadable
	Status  int                         // the answer to the NOTIFY
	Cause   error                       // why Status is not 200
	PIDF    *translate.Presence         // U's presence, when the body had one
	Out     notifyOutcome
	Stanzas []translate.Presence // for X, from U, in order
}

// readNotify reads a NOTIFY (Subscription-State, PIDF body) and decides
// the stanzas for X. A body that is not PIDF (415) or not valid (400) is
// refused, but the state change it came with still counts.
func readNotify(req *gosip.Request, pair presencePair, told, leaving bool) notifyResult {
	r := notifyResult{Status: 200}
	var hdr string
	if h := req.GetHeader("Subscription-State"); h != nil {
		hdr = h.Value()
	}
	state, err := translate.ParseSubscriptionState(hdr)
	if err != nil {
		r.Status, r.Cause = 400, err
		return r
	}
	r.State = state
	if body := req.Body(); len(body) > 0 {
		ct := ""
		if h := req.ContentType(); h != nil {
			ct = strings.ToLower(strings.TrimSpace(strings.Split(h.Value(), ";")[0]))
		}
		if ct != translate.ContentTypePIDF {
			r.Status = 415
			r.Cause = fmt.Errorf("%w: NOTIFY body of type %q, expected %s (RFC 3856 §7)", translate.ErrUnsupportedMedia, ct, translate.ContentTypePIDF)
		} else if p, err := translate.PresenceFromPIDF(body); err != nil {
			r.Status, r.Cause = 400, err
		} else {
			r.PIDF = &p
		}
	}
	r.Out = decideNotify(state, told, r.PIDF != nil, leaving)
	for _, t := range r.Out.Stanzas {
		p := translate.Presence{Type: t}
		if t == stanza.AvailablePresence {
			p = *r.PIDF // available or unavailable, as the document says
		}
		p.From, p.To = pair.u, pair.x
		r.Stanzas = append(r.Stanzas, p)
	}
	return r
}

// maxRetryAfter bounds how long a re-subscription waits for a notifier's
// retry-after.
const maxRetryAfter = 10 * time.Minute

// resubscribeLater re-creates X's subscription to U after the notifier
// ended it with a reason that invites a retry (RFC 6665 §4.1.3).
func (s *Server) resubscribeLater(id sip.DialogID, pair presencePair, retryAfter int) {
	d := time.Second
	if retryAfter > 0 {
		d = min(time.Duration(retryAfter)*time.Second, maxRetryAfter)
	}
	t := time.AfterFunc(d, func() {
		s.pres.setResub(id, nil)
		if !s.enter() {
			return
		}
		defer s.exit()
		ctx, cancel := context.WithTimeout(context.Background(), 32*time.Second)
		defer cancel()
		st := &xmpp.Stanza{Name: "presence", From: pair.x, To: pair.u, Type: string(stanza.SubscribePresence)}
		if err := s.subscribeSIP(ctx, st, pair); err != nil {
			// The subscription is gone for good: tell X as a refusal.
			s.toXMPP(ctx, translate.Presence{From: pair.u, To: pair.x, Type: stanza.UnsubscribedPresence})
		}
	})
	s.pres.setResub(id, t)
}

// subscriptionEnded cleans up after a dialog that ended without a request
// from the peer (expiry, failed refresh, failed NOTIFY).
func (s *Server) subscriptionEnded(ctx context.Context, sub sip.Subscription, reason string) {
	pair, err := s.pairOf(sub)
	told := s.pres.wasTold(sub.ID)
	s.pres.forget(sub.ID)
	if err == nil && sub.Role == sip.RoleNotifier {
		s.unwatched(pair.x, sub.ID)
	}
	s.log.Info("sip subscription ended", "role", string(sub.Role), "from", sub.RemoteURI, "to", sub.LocalURI, "reason", reason)
	if err != nil || sub.Role != sip.RoleSubscriber || !told {
		return
	}
	// We can no longer vouch for U's presence; X's next probe (e.g. on
	// its next login) subscribes again.
	s.toXMPP(ctx, translate.Presence{From: pair.u, To: pair.x, Type: stanza.UnavailablePresence})
}

// Helpers.

// dialogsOf lists the live presence dialogs of one role between a pair.
func (s *Server) dialogsOf(role sip.Role, pair presencePair) []sip.Subscription {
	var out []sip.Subscription
	for _, sub := range s.ep.Subscriptions() {
		if sub.Role != role || !strings.EqualFold(sub.Event, "presence") || sub.State == sip.StateTerminated {
			continue
		}
		if p, err := s.pairOf(sub); err == nil && p.x.Equal(pair.x) && p.u.Equal(pair.u) {
			out = append(out, sub)
		}
	}
	return out
}

// watched reports whether a SIP user watches X: a live notifier dialog
// other than except, or one being created.
func (s *Server) watched(x jid.JID, except sip.DialogID) bool {
	if s.pres.freshFor(x) {
		return true
	}
	for _, sub := range s.ep.Subscriptions() {
		if sub.ID == except || sub.Role != sip.RoleNotifier || !strings.EqualFold(sub.Event, "presence") || sub.State == sip.StateTerminated {
			continue
		}
		if p, err := s.pairOf(sub); err == nil && p.x.Equal(x) {
			return true
		}
	}
	return false
}

// unwatched drops X's presence when the notifier dialog ended was the last
// one watching X.
func (s *Server) unwatched(x jid.JID, ended sip.DialogID) {
	if !s.watched(x, ended) {
		s.pres.dropXMPP(x)
	}
}

// pairOf reads a dialog's users: LocalURI is always the XMPP user (we
// subscribe as X, and the Edge subscribes to X), RemoteURI the SIP user.
func (s *Server) pairOf(sub sip.Subscription) (presencePair, error) {
	if p, ok := s.pres.pair(sub.ID); ok {
		return p, nil
	}
	x, err1 := s.jidOf(sub.LocalURI, translate.SideXMPP)
	u, err2 := s.jidOf(sub.RemoteURI, translate.SideSIP)
	if err := errors.Join(err1, err2); err != nil {
		return presencePair{}, err
	}
	p := presencePair{x: x, u: u}
	s.pres.setPair(sub.ID, p)
	return p, nil
}

func (s *Server) jidOf(uri string, side translate.Side) (jid.JID, error) {
	var u gosip.Uri
	if err := gosip.ParseUri(uri, &u); err != nil {
		return jid.JID{}, fmt.Errorf("%w: dialog URI %q: %w", translate.ErrUnmappable, uri, err)
	}
	j, err := s.mapper.JIDFromURI(&u, side)
	if err != nil {
		return jid.JID{}, err
	}
	return j.Bare(), nil
}

// toXMPP sends a presence stanza from a SIP user to an XMPP user; a
// failure is logged (the xmpp pool bounces what it queued to the Handler).
func (s *Server) toXMPP(ctx context.Context, p translate.Presence) {
	if p.ID == "" {
		p.ID = presenceID()
	}
	st := &xmpp.Stanza{Name: "presence", From: p.From, To: p.To, Type: string(p.Type), ID: p.ID, Lang: p.Lang, Inner: p.AppendInner(nil)}
	if err := s.xs.Send(ctx, st); err != nil {
		s.log.Warn("xmpp presence not sent", "from", p.From.String(), "to", p.To.String(), "type", string(p.Type), "err", err)
	}
}

func presenceID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "p-" + hex.EncodeToString(b)
}
