package sip_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	gwsip "github.com/xgw-gateway/xgw/gateway/sip"
)

// notifies collects the NOTIFYs the Edge receives and answers 200.
func (e *edge) collectNotifies() chan *sip.Request {
	ch := make(chan *sip.Request, 16)
	e.srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		ch <- req
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	return ch
}

func nextReq(t *testing.T, ch chan *sip.Request, what string) *sip.Request {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5s", what)
		return nil
	}
}

// subscribe builds the Edge's initial SUBSCRIBE to a gateway user.
func (e *edge) subscribe(event string, expires int) *sip.Request {
	req := e.request(sip.SUBSCRIBE, "sip:romeo@xmpp.test")
	if event != "" {
		req.AppendHeader(sip.NewHeader("Event", event))
	}
	if expires >= 0 {
		req.AppendHeader(sip.NewHeader("Expires", itoa(expires)))
	}
	req.AppendHeader(sip.NewHeader("Record-Route", "<sip:127.0.0.1:"+itoa(e.port())+";transport=tcp;lr>"))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.SUBSCRIBE})
	return req
}

// inDialog builds the Edge's next request in the dialog that first/res
// created (the Edge is the subscriber here).
func inDialog(t *testing.T, first *sip.Request, res *sip.Response, method sip.RequestMethod, cseq uint32) *sip.Request {
	t.Helper()
	target := first.Recipient
	if c := res.Contact(); c != nil {
		target = c.Address
	}
	req := sip.NewRequest(method, target)
	req.AppendHeader(sip.HeaderClone(first.From()))
	req.AppendHeader(sip.HeaderClone(res.To()))
	req.AppendHeader(first.CallID())
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	req.AppendHeader(first.Contact())
	req.AppendHeader(sip.NewHeader("Event", "presence"))
	return req
}

func subState(req *sip.Request) string { return hdr(req, "Subscription-State") }

// The Edge subscribes to a gateway user: create, NOTIFY, refresh, our own
// NOTIFY, out-of-order CSeq, unsubscribe, then 481.
func TestNotifierLifecycle(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tcp", nil, nil)
	notifies := ed.collectNotifies()
	ed.serve()
	h := newHandler()
	store := gwsip.NewMemoryStore()
	ep, logs, _ := gateway(t, p, ed, h, func(c *gwsip.Config) { c.Store = store })

	sub := ed.subscribe("presence", 600)
	res := ed.mustDo(sub)
	if res.StatusCode != 200 || hdr(res, "Expires") != "600" || res.Contact() == nil {
		t.Fatalf("SUBSCRIBE: %d Expires=%q Contact=%v, want 200, 600, a Contact", res.StatusCode, hdr(res, "Expires"), res.Contact())
	}
	c := next(t, h.subscribes, "HandleSubscribe")
	if c.change != gwsip.ChangeNew || c.sub.Role != gwsip.RoleNotifier || c.sub.Event != "presence" {
		t.Errorf("handler got %v %+v", c.change, c.sub)
	}
	if want := "sip:127.0.0.1:" + itoa(ed.port()) + ";transport=tcp;lr"; len(c.sub.RouteSet) != 1 || c.sub.RouteSet[0] != want {
		t.Errorf("route set %q, want [%s]", c.sub.RouteSet, want)
	}
	if c.sub.RemoteTarget != sub.Contact().Address.String() {
		t.Errorf("remote target %q, want the Contact %q", c.sub.RemoteTarget, sub.Contact().Address.String())
	}
	n := nextReq(t, notifies, "first NOTIFY")
	if !strings.HasPrefix(subState(n), "active;expires=") || !strings.Contains(string(n.Body()), "<basic>open</basic>") {
		t.Errorf("first NOTIFY: state %q body %q", subState(n), n.Body())
	}
	if n.CallID().Value() != sub.CallID().Value() || tagOf(n.To()) != tagOf(sub.From()) || tagOf(n.From()) != tagOf(res.To()) {
		t.Errorf("NOTIFY is not in the dialog: Call-ID %s From %s To %s", n.CallID().Value(), n.From().Value(), n.To().Value())
	}
	if n.Route() == nil || n.Recipient.String() != sub.Contact().Address.String() {
		t.Errorf("NOTIFY Request-URI %s Route %v, want the Contact and the route set", n.Recipient.String(), n.Route())
	}
	id := c.sub.ID
	if _, ok := ep.Subscription(id); !ok {
		t.Fatalf("dialog %s not live", id)
	}
	if all, _ := store.All(context.Background()); len(all) != 1 {
		t.Fatalf("store holds %d subscriptions, want 1", len(all))
	}

	t.Run("our NOTIFY", func(t *testing.T) {
		if err := ep.Notify(context.Background(), id, gwsip.Notification{State: gwsip.StateActive, ContentType: "application/pidf+xml", Body: []byte(pidf("closed"))}); err != nil {
			t.Fatal(err)
		}
		n2 := nextReq(t, notifies, "NOTIFY from Notify()")
		if n2.CSeq().SeqNo <= n.CSeq().SeqNo || !strings.Contains(string(n2.Body()), "closed") {
			t.Errorf("CSeq %d after %d, body %q", n2.CSeq().SeqNo, n.CSeq().SeqNo, n2.Body())
		}
	})
	t.Run("refresh", func(t *testing.T) {
		r := inDialog(t, sub, res, sip.SUBSCRIBE, 2)
		r.AppendHeader(sip.NewHeader("Expires", "1200"))
		rr := ed.mustDo(r)
		if rr.StatusCode != 200 || hdr(rr, "Expires") != "1200" {
			t.Fatalf("refresh: %d Expires %q", rr.StatusCode, hdr(rr, "Expires"))
		}
		if c := next(t, h.subscribes, "refresh"); c.change != gwsip.ChangeRefresh {
			t.Errorf("change %v, want refresh", c.change)
		}
		nextReq(t, notifies, "NOTIFY after refresh")
	})
	t.Run("CSeq out of order", func(t *testing.T) {
		r := inDialog(t, sub, res, sip.SUBSCRIBE, 2)
		r.AppendHeader(sip.NewHeader("Expires", "600"))
		if rr := ed.mustDo(r); rr.StatusCode != 500 {
			t.Errorf("status %d, want 500", rr.StatusCode)
		}
	})
	t.Run("unsubscribe", func(t *testing.T) {
		r := inDialog(t, sub, res, sip.SUBSCRIBE, 3)
		r.AppendHeader(sip.NewHeader("Expires", "0"))
		rr := ed.mustDo(r)
		if rr.StatusCode != 200 || hdr(rr, "Expires") != "0" {
			t.Fatalf("unsubscribe: %d Expires %q", rr.StatusCode, hdr(rr, "Expires"))
		}
		if c := next(t, h.subscribes, "unsubscribe"); c.change != gwsip.ChangeUnsubscribe {
			t.Errorf("change %v, want unsubscribe", c.change)
		}
		last := nextReq(t, notifies, "terminating NOTIFY")
		if subState(last) != "terminated;reason=timeout" {
			t.Errorf("Subscription-State %q, want terminated;reason=timeout", subState(last))
		}
		if _, ok := ep.Subscription(id); ok {
			t.Error("dialog still live after unsubscribe")
		}
		if all, _ := store.All(context.Background()); len(all) != 0 {
			t.Errorf("store still holds %d subscriptions", len(all))
		}
	})
	t.Run("481 after the end", func(t *testing.T) {
		r := inDialog(t, sub, res, sip.SUBSCRIBE, 4)
		r.AppendHeader(sip.NewHeader("Expires", "600"))
		if rr := ed.mustDo(r); rr.StatusCode != 481 {
			t.Errorf("status %d, want 481", rr.StatusCode)
		}
		if err := ep.Notify(context.Background(), id, gwsip.Notification{State: gwsip.StateActive}); !errors.Is(err, gwsip.ErrNoDialog) {
			t.Errorf("Notify on an ended dialog: %v, want ErrNoDialog", err)
		}
	})
	for _, want := range []string{"dialog created", "dialog refreshed", "dialog terminated"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// Each initial SUBSCRIBE the notifier must refuse or adjust.
func TestSubscribeNegotiation(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tcp", nil, nil)
	notifies := ed.collectNotifies()
	ed.serve()
	h := newHandler()
	h.subscribe = func(_ context.Context, _ gwsip.Change, s gwsip.Subscription) gwsip.Answer {
		switch s.RemoteURI {
		case "sip:blocked@litware.test":
			return gwsip.Answer{Status: 403}
		case "sip:pending@litware.test":
			return gwsip.Answer{Status: 202}
		}
		return gwsip.Answer{Status: 200, ContentType: "application/pidf+xml", Body: []byte(pidf("open"))}
	}
	ep, _, _ := gateway(t, p, ed, h, func(c *gwsip.Config) {
		c.MinExpires, c.MaxExpires = time.Minute, time.Hour
	})
	tests := []struct {
		name        string
		event       string
		expires     int
		from        string
		wantStatus  int
		wantHeaders map[string]string
		wantNotify  string // Subscription-State prefix of the NOTIFY that follows, "" for none
		keeps       bool
	}{
		{"unknown event package", "dialog", 600, "", 489, map[string]string{"Allow-Events": "presence"}, "", false},
		{"no Event header", "", 600, "", 400, nil, "", false},
		{"interval too brief", "presence", 10, "", 423, map[string]string{"Min-Expires": "60"}, "", false},
		{"interval above the maximum", "presence", 7200, "", 200, map[string]string{"Expires": "3600"}, "active;expires=", true},
		{"no Expires takes the default", "presence", -1, "", 200, map[string]string{"Expires": "3600"}, "active;expires=", true},
		{"handler refuses", "presence", 600, "blocked", 403, nil, "", false},
		{"handler leaves it pending", "presence", 600, "pending", 200, map[string]string{"Expires": "600"}, "pending;expires=", true},
		{"fetch", "presence", 0, "", 200, map[string]string{"Expires": "0"}, "terminated;reason=timeout", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(ep.Subscriptions())
			req := ed.subscribe(tt.event, tt.expires)
			if tt.from != "" {
				req.From().Address.User = tt.from
			}
			res := ed.mustDo(req)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status %d %s, want %d", res.StatusCode, res.Reason, tt.wantStatus)
			}
			for k, v := range tt.wantHeaders {
				if got := hdr(res, k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tt.wantNotify != "" {
				if n := nextReq(t, notifies, "NOTIFY"); !strings.HasPrefix(subState(n), tt.wantNotify) {
					t.Errorf("NOTIFY state %q, want %s...", subState(n), tt.wantNotify)
				}
			}
			grew := len(ep.Subscriptions()) - before
			if tt.keeps != (grew == 1) {
				t.Errorf("dialogs went from %d by %d, keeps=%v", before, grew, tt.keeps)
			}
			for len(h.subscribes) > 0 {
				<-h.subscribes
			}
		})
	}
	t.Run("unknown dialog", func(t *testing.T) {
		req := ed.subscribe("presence", 600)
		req.To().Params.Add("tag", "nosuchtag")
		if res := ed.mustDo(req); res.StatusCode != 481 {
			t.Errorf("status %d, want 481", res.StatusCode)
		}
	})
}

// A subscription nobody refreshes ends with NOTIFY terminated;timeout.
func TestNotifierExpiry(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tcp", nil, nil)
	notifies := ed.collectNotifies()
	ed.serve()
	h := newHandler()
	store := gwsip.NewMemoryStore()
	ep, _, _ := gateway(t, p, ed, h, func(c *gwsip.Config) { c.MinExpires, c.Store = time.Second, store })
	if res := ed.mustDo(ed.subscribe("presence", 1)); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	nextReq(t, notifies, "first NOTIFY")
	last := nextReq(t, notifies, "NOTIFY at expiry")
	if subState(last) != "terminated;reason=timeout" {
		t.Errorf("state %q, want terminated;reason=timeout", subState(last))
	}
	if c := next(t, h.ended, "HandleEnded"); c.reason != "expired" {
		t.Errorf("ended reason %q", c.reason)
	}
	if n := len(ep.Subscriptions()); n != 0 {
		t.Errorf("%d dialogs live after expiry", n)
	}
	if all, _ := store.All(context.Background()); len(all) != 0 {
		t.Errorf("store holds %d after expiry", len(all))
	}
}

// The gateway subscribes through the Edge: 2xx creates the dialog, NOTIFYs
// flow in, the refresh follows the route set, unsubscribe waits for the
// final NOTIFY.
func TestSubscriberLifecycle(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tcp", nil, nil)
	subs := make(chan *sip.Request, 8)
	rr := "<sip:127.0.0.1:" + itoa(ed.port()) + ";transport=tcp;lr>"
	edgeContact := "sip:alice@127.0.0.1:" + itoa(ed.port()) + ";transport=tcp"
	ed.srv.OnSubscribe(func(req *sip.Request, tx sip.ServerTransaction) {
		subs <- req
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("Expires", hdr(req, "Expires")))
		res.AppendHeader(sip.NewHeader("Contact", "<"+edgeContact+">"))
		if !req.To().Params.Has("tag") {
			res.AppendHeader(sip.NewHeader("Record-Route", rr))
		}
		tx.Respond(res)
	})
	ed.serve()
	h := newHandler()
	store := gwsip.NewMemoryStore()
	ep, logs, _ := gateway(t, p, ed, h, func(c *gwsip.Config) { c.Store = store })

	s, err := ep.Subscribe(context.Background(), gwsip.SubscribeRequest{
		From: uri(t, "sip:romeo@xmpp.test"), To: uri(t, "sip:alice@litware.test"), Expires: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	first := nextReq(t, subs, "SUBSCRIBE")
	if hdr(first, "Event") != "presence" || hdr(first, "Expires") != "3" || first.Contact() == nil || hdr(first, "Accept") != "application/pidf+xml" {
		t.Errorf("SUBSCRIBE headers: Event %q Expires %q Accept %q", hdr(first, "Event"), hdr(first, "Expires"), hdr(first, "Accept"))
	}
	if s.Role != gwsip.RoleSubscriber || s.RemoteTarget != edgeContact || len(s.RouteSet) != 1 || s.ID.RemoteTag == "" {
		t.Fatalf("subscription %+v", s)
	}
	if all, _ := store.All(context.Background()); len(all) != 1 {
		t.Fatalf("store holds %d, want 1", len(all))
	}

	notify := func(cseq uint32, state, body string) *sip.Response {
		var u sip.Uri
		sip.ParseUri(first.Contact().Address.String(), &u)
		req := sip.NewRequest(sip.NOTIFY, u)
		from := &sip.FromHeader{Address: uri(t, "sip:alice@litware.test"), Params: sip.NewParams()}
		from.Params.Add("tag", s.ID.RemoteTag)
		to := &sip.ToHeader{Address: uri(t, "sip:romeo@xmpp.test"), Params: sip.NewParams()}
		to.Params.Add("tag", s.ID.LocalTag)
		cid := sip.CallIDHeader(s.ID.CallID)
		req.AppendHeader(from)
		req.AppendHeader(to)
		req.AppendHeader(&cid)
		req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.NOTIFY})
		req.AppendHeader(sip.NewHeader("Contact", "<"+edgeContact+">"))
		req.AppendHeader(sip.NewHeader("Event", "presence"))
		req.AppendHeader(sip.NewHeader("Subscription-State", state))
		ct := sip.ContentTypeHeader("application/pidf+xml")
		req.AppendHeader(&ct)
		req.SetBody([]byte(body))
		return ed.mustDo(req)
	}
	if res := notify(1, "active;expires=3", pidf("open")); res.StatusCode != 200 {
		t.Fatalf("NOTIFY: %d", res.StatusCode)
	}
	if c := next(t, h.notifies, "HandleNotify"); c.sub.State != gwsip.StateActive || !strings.Contains(string(c.req.Body()), "open") {
		t.Errorf("handler got state %s body %q", c.sub.State, c.req.Body())
	}
	if res := notify(1, "active;expires=3", pidf("open")); res.StatusCode != 500 {
		t.Errorf("NOTIFY with a repeated CSeq: %d, want 500", res.StatusCode)
	}

	refresh := nextReq(t, subs, "refresh SUBSCRIBE")
	if refresh.CallID().Value() != s.ID.CallID || tagOf(refresh.From()) != s.ID.LocalTag || tagOf(refresh.To()) != s.ID.RemoteTag {
		t.Errorf("refresh outside the dialog: %s", refresh.Short())
	}
	if refresh.CSeq().SeqNo != 2 || refresh.Recipient.String() != edgeContact || refresh.Route() == nil {
		t.Errorf("refresh CSeq %d Request-URI %s Route %v", refresh.CSeq().SeqNo, refresh.Recipient.String(), refresh.Route())
	}
	waitFor(t, "refresh logged", func() bool { return strings.Contains(logs.String(), "dialog refreshed") })

	if err := ep.Unsubscribe(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	if u := nextReq(t, subs, "unsubscribe"); hdr(u, "Expires") != "0" {
		t.Errorf("unsubscribe Expires %q", hdr(u, "Expires"))
	}
	if all, _ := store.All(context.Background()); len(all) != 0 {
		t.Errorf("store holds %d after unsubscribe", len(all))
	}
	// A NOTIFY still saying active while we wait must not bring the
	// subscription back into the Store.
	if res := notify(2, "active;expires=1", pidf("open")); res.StatusCode != 200 {
		t.Errorf("NOTIFY while unsubscribing: %d, want 200", res.StatusCode)
	}
	next(t, h.notifies, "HandleNotify while unsubscribing")
	if all, _ := store.All(context.Background()); len(all) != 0 {
		t.Errorf("store holds %d after a NOTIFY during unsubscribe", len(all))
	}
	if res := notify(3, "terminated;reason=timeout", ""); res.StatusCode != 200 {
		t.Errorf("final NOTIFY: %d, want 200 (the dialog lingers for it)", res.StatusCode)
	}
	if c := next(t, h.notifies, "final HandleNotify"); c.sub.State != gwsip.StateTerminated || c.sub.Reason != "timeout" {
		t.Errorf("final NOTIFY seen as %s/%s", c.sub.State, c.sub.Reason)
	}
	if n := len(ep.Subscriptions()); n != 0 {
		t.Errorf("%d dialogs after the final NOTIFY", n)
	}
	if res := notify(4, "active", ""); res.StatusCode != 481 {
		t.Errorf("NOTIFY after the end: %d, want 481", res.StatusCode)
	}
}

// RFC 6665 §4.1.2.4: a NOTIFY that overtakes the 2xx creates the dialog.
func TestNotifyBeforeOK(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tcp", nil, nil)
	edgeTag := "edge-tag-1"
	notified := make(chan int, 1)
	ed.srv.OnSubscribe(func(req *sip.Request, tx sip.ServerTransaction) {
		n := sip.NewRequest(sip.NOTIFY, req.Contact().Address)
		from := &sip.FromHeader{Address: req.To().Address, Params: sip.NewParams()}
		from.Params.Add("tag", edgeTag)
		to := &sip.ToHeader{Address: req.From().Address, Params: req.From().Params.Clone()}
		n.AppendHeader(from)
		n.AppendHeader(to)
		n.AppendHeader(req.CallID())
		n.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.NOTIFY})
		n.AppendHeader(sip.NewHeader("Contact", "<sip:alice@127.0.0.1:"+itoa(ed.port())+";transport=tcp>"))
		n.AppendHeader(sip.NewHeader("Event", "presence"))
		n.AppendHeader(sip.NewHeader("Subscription-State", "active;expires=600"))
		status := 0
		if res, err := ed.do(n); err == nil {
			status = res.StatusCode
		}
		notified <- status
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.To().Params.Remove("tag")
		res.To().Params.Add("tag", edgeTag)
		res.AppendHeader(sip.NewHeader("Expires", "600"))
		tx.Respond(res)
	})
	ed.serve()
	h := newHandler()
	ep, logs, _ := gateway(t, p, ed, h, nil)

	s, err := ep.Subscribe(context.Background(), gwsip.SubscribeRequest{From: uri(t, "sip:romeo@xmpp.test"), To: uri(t, "sip:alice@litware.test"), Expires: 600 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if st := <-notified; st != 200 {
		t.Fatalf("early NOTIFY answered %d, want 200", st)
	}
	c := next(t, h.notifies, "HandleNotify for the early NOTIFY")
	if c.sub.ID != s.ID || s.ID.RemoteTag != edgeTag {
		t.Errorf("early NOTIFY dialog %s, Subscribe returned %s", c.sub.ID, s.ID)
	}
	if n := len(ep.Subscriptions()); n != 1 {
		t.Errorf("%d dialogs, want 1", n)
	}
	if !strings.Contains(logs.String(), "before the 2xx") {
		t.Error("no log line for the dialog created by NOTIFY")
	}
}

// Subscriptions in the bbolt store survive a restart: the new endpoint
// answers in-dialog requests, sends NOTIFYs with a higher CSeq and ends
// what expired while it was down.
func TestRestartKeepsSubscriptions(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tcp", nil, nil)
	notifies := ed.collectNotifies()
	ed.srv.OnSubscribe(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("Expires", hdr(req, "Expires")))
		res.AppendHeader(sip.NewHeader("Contact", "<sip:alice@127.0.0.1:"+itoa(ed.port())+";transport=tcp>"))
		tx.Respond(res)
	})
	ed.serve()
	path := filepath.Join(t.TempDir(), "subs.db")
	open := func() *gwsip.BoltStore {
		st, err := gwsip.OpenBoltStore(path)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	st := open()
	h := newHandler()
	ep, _, stop := gateway(t, p, ed, h, func(c *gwsip.Config) { c.Store, c.MinExpires = st, time.Second })
	addr := ep.Addr().String()
	// The Edge subscribes to romeo (we notify) ...
	sub := ed.subscribe("presence", 600)
	res := ed.mustDo(sub)
	notifierID := next(t, h.subscribes, "HandleSubscribe").sub.ID
	firstNotify := nextReq(t, notifies, "first NOTIFY")
	// ... one that will expire while we are down ...
	ed.mustDo(ed.subscribe("presence", 1))
	shortID := next(t, h.subscribes, "HandleSubscribe").sub.ID
	nextReq(t, notifies, "first NOTIFY")
	// ... and we subscribe to alice.
	mine, err := ep.Subscribe(context.Background(), gwsip.SubscribeRequest{From: uri(t, "sip:romeo@xmpp.test"), To: uri(t, "sip:alice@litware.test"), Expires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	stop()
	st.Close()
	time.Sleep(1100 * time.Millisecond) // shortID expires meanwhile

	st = open()
	defer st.Close()
	h2 := newHandler()
	ep2, logs, _ := gateway(t, p, ed, h2, func(c *gwsip.Config) { c.Store, c.Listen = st, addr })
	ended := next(t, h2.ended, "HandleEnded for the expired subscription")
	if ended.sub.ID != shortID || ended.reason != "expired while the gateway was down" {
		t.Errorf("ended %s (%s), want %s", ended.sub.ID, ended.reason, shortID)
	}
	// Serve reloads before it accepts; wait for it.
	waitFor(t, "reload", func() bool { return len(ep2.Subscriptions()) >= 2 })
	live := map[gwsip.DialogID]bool{}
	for _, s := range ep2.Subscriptions() {
		live[s.ID] = true
	}
	if len(live) != 2 || !live[notifierID] || !live[mine.ID] {
		t.Fatalf("after restart live dialogs %v, want %s and %s", live, notifierID, mine.ID)
	}
	if !strings.Contains(logs.String(), "dialog resumed") {
		t.Error("no 'dialog resumed' log line")
	}

	r := inDialog(t, sub, res, sip.SUBSCRIBE, 2)
	r.AppendHeader(sip.NewHeader("Expires", "600"))
	var rr *sip.Response
	waitFor(t, "refresh accepted by the restarted gateway", func() bool {
		rr, err = ed.do(r.Clone())
		return err == nil
	})
	if rr.StatusCode != 200 {
		t.Fatalf("refresh after restart: %d, want 200", rr.StatusCode)
	}
	if c := next(t, h2.subscribes, "refresh after restart"); c.change != gwsip.ChangeRefresh {
		t.Errorf("change %v", c.change)
	}
	n := nextReq(t, notifies, "NOTIFY after restart")
	if n.CSeq().SeqNo <= firstNotify.CSeq().SeqNo {
		t.Errorf("NOTIFY CSeq %d after restart, not above %d before", n.CSeq().SeqNo, firstNotify.CSeq().SeqNo)
	}
	if err := ep2.Unsubscribe(context.Background(), mine.ID); err != nil {
		t.Errorf("unsubscribe a reloaded subscription: %v", err)
	}
}

func tagOf(h interface{ Value() string }) string {
	for _, p := range strings.Split(h.Value(), ";")[1:] {
		if v, ok := strings.CutPrefix(strings.TrimSpace(p), "tag="); ok {
			return v
		}
	}
	return ""
}

// How the subscriber side takes each answer to its refresh (RFC 6665
// §4.1.2.2): 423 is retried with Min-Expires, 481 ends the dialog at
// once, another error lets it run until it expires.
func TestSubscriberRefreshOutcomes(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name       string
		refresh    []int // statuses for successive in-dialog SUBSCRIBEs
		wantEnded  string
		wantExpiry string // Expires of the last refresh, "" to skip
	}{
		{"423 then retried", []int{423, 200}, "", "4"},
		{"481 ends it", []int{481}, "notifier answered 481 to the refresh", ""},
		{"500 runs until expiry", []int{500}, "refresh refused with 500, subscription expired", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ed := startEdge(t, p, "tcp", nil, nil)
			refreshes := make(chan *sip.Request, 4)
			var n atomic.Int32
			ed.srv.OnSubscribe(func(req *sip.Request, tx sip.ServerTransaction) {
				status := 200
				if req.To().Params.Has("tag") {
					refreshes <- req
					if i := int(n.Add(1)) - 1; i < len(tt.refresh) {
						status = tt.refresh[i]
					}
				}
				res := sip.NewResponseFromRequest(req, status, "", nil)
				if status == 423 {
					res.AppendHeader(sip.NewHeader("Min-Expires", "4"))
				}
				res.AppendHeader(sip.NewHeader("Expires", hdr(req, "Expires")))
				res.AppendHeader(sip.NewHeader("Contact", "<sip:alice@127.0.0.1:"+itoa(ed.port())+";transport=tcp>"))
				tx.Respond(res)
			})
			ed.serve()
			h := newHandler()
			store := gwsip.NewMemoryStore()
			ep, _, _ := gateway(t, p, ed, h, func(c *gwsip.Config) { c.Store = store })
			s, err := ep.Subscribe(context.Background(), gwsip.SubscribeRequest{From: uri(t, "sip:romeo@xmpp.test"), To: uri(t, "sip:alice@litware.test"), Expires: 3 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			var last *sip.Request
			for range tt.refresh {
				last = nextReq(t, refreshes, "refresh")
			}
			if tt.wantExpiry != "" && hdr(last, "Expires") != tt.wantExpiry {
				t.Errorf("last refresh asked Expires %q, want %q", hdr(last, "Expires"), tt.wantExpiry)
			}
			if tt.wantEnded == "" {
				waitFor(t, "refreshed expiry", func() bool {
					cur, ok := ep.Subscription(s.ID)
					return ok && cur.Expires.After(s.Expires)
				})
				return
			}
			c := next(t, h.ended, "HandleEnded")
			if c.reason != tt.wantEnded {
				t.Errorf("ended: %q, want %q", c.reason, tt.wantEnded)
			}
			if _, ok := ep.Subscription(s.ID); ok {
				t.Error("dialog still live")
			}
			if all, _ := store.All(context.Background()); len(all) != 0 {
				t.Errorf("store holds %d", len(all))
			}
		})
	}
}

// A NOTIFY the Edge answers 481 ends the subscription (RFC 6665 §4.2.2).
func TestNotify481EndsDialog(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tcp", nil, nil)
	var count atomic.Int32
	ed.srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		status := 200
		if count.Add(1) > 1 {
			status = 481
		}
		tx.Respond(sip.NewResponseFromRequest(req, status, "", nil))
	})
	ed.serve()
	h := newHandler()
	ep, _, _ := gateway(t, p, ed, h, nil)
	ed.mustDo(ed.subscribe("presence", 600))
	id := next(t, h.subscribes, "HandleSubscribe").sub.ID
	waitFor(t, "first NOTIFY answered", func() bool { return count.Load() == 1 })
	err := ep.Notify(context.Background(), id, gwsip.Notification{State: gwsip.StateActive})
	var se *gwsip.StatusError
	if !errors.As(err, &se) || se.Status != 481 {
		t.Fatalf("err = %v, want a 481 StatusError", err)
	}
	if c := next(t, h.ended, "HandleEnded"); c.sub.ID != id {
		t.Errorf("ended %s, want %s", c.sub.ID, id)
	}
	if _, ok := ep.Subscription(id); ok {
		t.Error("dialog still live after 481")
	}
}

// A subscription accepted as pending and approved later with Notify keeps
// announcing active: in the NOTIFY that answers a refresh and in the Store.
func TestNotifyApprovalSticks(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tcp", nil, nil)
	notifies := ed.collectNotifies()
	ed.serve()
	h := newHandler()
	h.subscribe = func(context.Context, gwsip.Change, gwsip.Subscription) gwsip.Answer { return gwsip.Answer{Status: 202} }
	store := gwsip.NewMemoryStore()
	ep, _, _ := gateway(t, p, ed, h, func(c *gwsip.Config) { c.Store = store })

	sub := ed.subscribe("presence", 600)
	res := ed.mustDo(sub)
	if res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	id := next(t, h.subscribes, "HandleSubscribe").sub.ID
	if n := nextReq(t, notifies, "first NOTIFY"); !strings.HasPrefix(subState(n), "pending") {
		t.Fatalf("first NOTIFY %q, want pending", subState(n))
	}
	if err := ep.Notify(context.Background(), id, gwsip.Notification{State: gwsip.StateActive}); err != nil {
		t.Fatal(err)
	}
	if n := nextReq(t, notifies, "approving NOTIFY"); !strings.HasPrefix(subState(n), "active") {
		t.Fatalf("approving NOTIFY %q, want active", subState(n))
	}
	if all, _ := store.All(context.Background()); len(all) != 1 || all[0].State != gwsip.StateActive {
		t.Errorf("store holds %+v, want one active subscription", all)
	}
	r := inDialog(t, sub, res, sip.SUBSCRIBE, 2)
	r.AppendHeader(sip.NewHeader("Expires", "600"))
	if rr := ed.mustDo(r); rr.StatusCode != 200 {
		t.Fatalf("refresh: %d", rr.StatusCode)
	}
	if n := nextReq(t, notifies, "NOTIFY after refresh"); !strings.HasPrefix(subState(n), "active") {
		t.Errorf("NOTIFY after refresh %q, want active", subState(n))
	}
}

// A notifier that accepts and at once ends the subscription with NOTIFYs
// sent before its 2xx leaves no dialog behind: the late 2xx does not
// revive it, in memory or in the Store.
func TestNotifyEndsBeforeOK(t *testing.T) {
	p := newPKI(t)
	ed := startEdge(t, p, "tcp", nil, nil)
	edgeTag := "edge-tag-2"
	ed.srv.OnSubscribe(func(req *sip.Request, tx sip.ServerTransaction) {
		for i, state := range []string{"active;expires=600", "terminated;reason=rejected"} {
			n := sip.NewRequest(sip.NOTIFY, req.Contact().Address)
			from := &sip.FromHeader{Address: req.To().Address, Params: sip.NewParams()}
			from.Params.Add("tag", edgeTag)
			n.AppendHeader(from)
			n.AppendHeader(&sip.ToHeader{Address: req.From().Address, Params: req.From().Params.Clone()})
			n.AppendHeader(req.CallID())
			n.AppendHeader(&sip.CSeqHeader{SeqNo: uint32(i + 1), MethodName: sip.NOTIFY})
			n.AppendHeader(sip.NewHeader("Contact", "<sip:alice@127.0.0.1:"+itoa(ed.port())+";transport=tcp>"))
			n.AppendHeader(sip.NewHeader("Event", "presence"))
			n.AppendHeader(sip.NewHeader("Subscription-State", state))
			ed.do(n)
		}
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.To().Params.Remove("tag")
		res.To().Params.Add("tag", edgeTag)
		res.AppendHeader(sip.NewHeader("Expires", "600"))
		tx.Respond(res)
	})
	ed.serve()
	h := newHandler()
	store := gwsip.NewMemoryStore()
	ep, _, _ := gateway(t, p, ed, h, func(c *gwsip.Config) { c.Store = store })

	s, err := ep.Subscribe(context.Background(), gwsip.SubscribeRequest{From: uri(t, "sip:romeo@xmpp.test"), To: uri(t, "sip:alice@litware.test"), Expires: 600 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if s.State != gwsip.StateTerminated {
		t.Errorf("Subscribe returned state %s, want terminated", s.State)
	}
	next(t, h.notifies, "active NOTIFY")
	next(t, h.notifies, "terminating NOTIFY")
	if subs := ep.Subscriptions(); len(subs) != 0 {
		t.Errorf("live dialogs %+v, want none", subs)
	}
	if all, _ := store.All(context.Background()); len(all) != 0 {
		t.Errorf("store holds %+v, want nothing", all)
	}
}
