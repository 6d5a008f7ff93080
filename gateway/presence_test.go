package gateway_test

// Presence through the gateway on loopback, without the namespace: a
// sipgo user agent plays the Edge (and the SIP users behind it) over TCP,
// a gateway/xmpp Server plays the federated domain peer.test.
// e2e_test.go does the same with Kamailio, sipp and Prosody.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"mellium.im/xmpp/jid"

	"github.com/xgw-gateway/xgw/gateway"
	"github.com/xgw-gateway/xgw/gateway/config"
	gwsip "github.com/xgw-gateway/xgw/gateway/sip"
	"github.com/xgw-gateway/xgw/gateway/translate"
	"github.com/xgw-gateway/xgw/gateway/xmpp"
	"github.com/xgw-gateway/xgw/internal/dnstest"
	"github.com/xgw-gateway/xgw/internal/lab"
	"github.com/xgw-gateway/xgw/internal/resolve"
)

type presenceLoop struct {
	t        *testing.T
	cfg      *config.Config
	stateDir string
	gwAddr   string // the s2s listener, kept across restarts
	dnsAddr  string
	edgeAddr string
	sipAddr  string

	peer   *xmpp.Server
	peerIn chan *xmpp.Stanza

	client   *sipgo.Client
	subsIn   chan edgeSub      // SUBSCRIBEs the Edge got from the gateway
	notifyIn chan *sip.Request // NOTIFYs the Edge got from the gateway
	tags     atomic.Int64      // To tags the Edge hands out
	logs     *lab.LogBuffer
	srv      *gateway.Server
	stop     context.CancelFunc
	served   chan error
}

// edgeSub is a SUBSCRIBE the Edge accepted, with the To tag it answered.
type edgeSub struct {
	req *sip.Request
	tag string
}

// startPresenceLoop runs the gateway for litware.test. The Edge answers
// SUBSCRIBE 404 for ghost@litware.test, nothing for mute@litware.test and
// 200 otherwise; the test sends the NOTIFYs of the SIP users itself.
func startPresenceLoop(t *testing.T) *presenceLoop {
	t.Helper()
	gwLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peerLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t, "127.0.0.1:0", "test", fmt.Sprintf(`$ORIGIN test.
peer                      60 IN A   127.0.0.1
_xmpp-server._tcp.peer    60 IN SRV 0 5 %d peer.test.
litware                   60 IN A   127.0.0.1
_xmpp-server._tcp.litware 60 IN SRV 0 5 %d litware.test.
`, peerLn.Addr().(*net.TCPAddr).Port, gwLn.Addr().(*net.TCPAddr).Port))
	res, err := resolve.New(dns.Addr)
	if err != nil {
		t.Fatal(err)
	}
	l := &presenceLoop{t: t, stateDir: t.TempDir(), gwAddr: gwLn.Addr().String(), dnsAddr: dns.Addr,
		peerIn: make(chan *xmpp.Stanza, 32), subsIn: make(chan edgeSub, 8), notifyIn: make(chan *sip.Request, 16), logs: &lab.LogBuffer{}}

	l.peer, err = xmpp.New(xmpp.Config{Domains: []string{"peer.test"}, Resolver: res,
		Federation: []config.Partner{{Domain: "litware.test", Auth: config.AuthDialback}},
		Handler: xmpp.HandlerFunc(func(_ context.Context, st *xmpp.Stanza) error {
			l.peerIn <- st
			return nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	go l.peer.Serve(context.Background(), peerLn)
	t.Cleanup(func() { l.peer.Close() })

	edgeLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.edgeAddr = edgeLn.Addr().String()
	quiet := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("edge"), sipgo.WithUserAgentHostname("litware.test"),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)))
	if err != nil {
		t.Fatal(err)
	}
	edge, _ := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	l.client, _ = sipgo.NewClient(ua, sipgo.WithClientLogger(quiet))
	edge.OnSubscribe(func(req *sip.Request, tx sip.ServerTransaction) {
		switch req.Recipient.User {
		case "ghost":
			tx.Respond(sip.NewResponseFromRequest(req, 404, "Not Found", nil))
			return
		case "mute": // never answers
			return
		}
		tag := "edge" + strconv.FormatInt(l.tags.Add(1), 10)
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		if to := res.To(); to != nil && !to.Params.Has("tag") {
			to.Params.Add("tag", tag)
		} else if to != nil {
			tag, _ = to.Params.Get("tag")
		}
		res.AppendHeader(l.edgeContact(req.Recipient.User))
		if e := req.GetHeader("Expires"); e != nil {
			res.AppendHeader(sip.NewHeader("Expires", e.Value()))
		}
		tx.Respond(res)
		l.subsIn <- edgeSub{req: req, tag: tag}
	})
	edge.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		l.notifyIn <- req
	})
	go edge.ServeTCP(edgeLn)
	t.Cleanup(func() { edgeLn.Close(); ua.Close() })

	l.cfg = &config.Config{
		SIP: config.SIP{Domains: []string{"litware.test"},
			Edge: config.Edge{Host: "127.0.0.1", Port: edgeLn.Addr().(*net.TCPAddr).Port, Transport: "tcp"}},
		XMPP: config.XMPP{Federation: []config.Partner{{Domain: "peer.test", Auth: config.AuthDialback}}},
	}
	l.start(t, gwLn, "127.0.0.1:0")
	t.Cleanup(func() {
		l.shutdown()
		if t.Failed() {
			t.Logf("gateway log:\n%s", l.logs.String())
		}
	})
	return l
}

// start runs a gateway on the state directory of l.
func (l *presenceLoop) start(t *testing.T, gwLn net.Listener, sipListen string) {
	t.Helper()
	var err error
	l.srv, err = gateway.New(l.cfg, gateway.WithXMPPListener(gwLn), gateway.WithSIPListen(sipListen),
		gateway.WithDNSServer(l.dnsAddr), gateway.WithStateDir(l.stateDir), gateway.WithDrainTimeout(3*time.Second),
		gateway.WithLogger(slog.New(slog.NewTextHandler(l.logs, nil))),
		gateway.WithSIPConfig(func(c *gwsip.Config) { c.KeepaliveInterval, c.RequestTimeout = -1, 2*time.Second }))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.srv.Listen(); err != nil {
		t.Fatal(err)
	}
	l.sipAddr = l.srv.SIPAddr().String()
	ctx, stop := context.WithCancel(context.Background())
	l.stop, l.served = stop, make(chan error, 1)
	go func() { l.served <- l.srv.Serve(ctx) }()
}

func (l *presenceLoop) shutdown() {
	if l.stop == nil {
		return
	}
	l.stop()
	l.stop = nil
	select {
	case err := <-l.served:
		if err != nil {
			l.t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		l.t.Errorf("Serve did not return 10 s after its context ended")
	}
}

// restart stops the gateway and starts a new one on the same state
// directory and addresses (the Edge's dialogs name the SIP address).
func (l *presenceLoop) restart(t *testing.T) {
	t.Helper()
	l.shutdown()
	// The peer must have seen the gateway close its streams: a stanza it
	// writes into a stream that is closing is lost (s2s has no XEP-0198
	// here), and the test would wait for it in vain.
	for deadline := time.Now().Add(10 * time.Second); len(l.peer.Streams()) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the peer still has streams 10 s after the gateway stopped: %+v", l.peer.Streams())
		}
	}
	var gwLn net.Listener
	var err error
	for i := 0; i < 50; i++ { // the old listener's port is free again at once, normally
		if gwLn, err = net.Listen("tcp", l.gwAddr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("rebinding %s: %v", l.gwAddr, err)
	}
	l.start(t, gwLn, l.sipAddr)
}

func (l *presenceLoop) edgeContact(user string) *sip.ContactHeader {
	host, port, _ := net.SplitHostPort(l.edgeAddr)
	p, _ := strconv.Atoi(port)
	u := sip.Uri{Scheme: "sip", User: user, Host: host, Port: p, UriParams: sip.NewParams()}
	u.UriParams.Add("transport", "tcp")
	return &sip.ContactHeader{Address: u}
}

// do sends a request from the Edge to the gateway.
func (l *presenceLoop) do(t *testing.T, req *sip.Request) *sip.Response {
	t.Helper()
	req.SetTransport("TCP")
	req.SetDestination(l.sipAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := l.client.Do(ctx, req)
	if err != nil {
		t.Fatalf("%s to the gateway: %v", req.Method, err)
	}
	return res
}

// notify sends a NOTIFY in the dialog of a SUBSCRIBE the Edge accepted,
// as the SIP user (RFC 6665 §4.2.2).
func (l *presenceLoop) notify(t *testing.T, s edgeSub, cseq uint32, state, body string) int {
	t.Helper()
	req := sip.NewRequest(sip.NOTIFY, s.req.Contact().Address)
	from := &sip.FromHeader{Address: s.req.To().Address, Params: sip.NewParams()}
	from.Params.Add("tag", s.tag)
	to := &sip.ToHeader{Address: s.req.From().Address, Params: s.req.From().Params.Clone()}
	cid := sip.CallIDHeader(s.req.CallID().Value())
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.NOTIFY})
	req.AppendHeader(l.edgeContact(s.req.To().Address.User))
	req.AppendHeader(sip.NewHeader("Event", "presence"))
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	if body != "" {
		ct := sip.ContentTypeHeader("application/pidf+xml")
		req.AppendHeader(&ct)
		req.SetBody([]byte(body))
	}
	return l.do(t, req).StatusCode
}

// subscribe sends a SUBSCRIBE from alice@litware.test for an XMPP user
// and returns it with the gateway's answer.
func (l *presenceLoop) subscribe(t *testing.T, to string, expires int) (*sip.Request, *sip.Response) {
	t.Helper()
	var uri sip.Uri
	if err := sip.ParseUri("sip:"+to, &uri); err != nil {
		t.Fatal(err)
	}
	req := sip.NewRequest(sip.SUBSCRIBE, uri)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "litware.test"}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: uri, Params: sip.NewParams()})
	req.AppendHeader(l.edgeContact("alice"))
	req.AppendHeader(sip.NewHeader("Event", "presence"))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	req.AppendHeader(sip.NewHeader("Accept", "application/pidf+xml"))
	return req, l.do(t, req)
}

// inDialog builds the next SUBSCRIBE in the dialog of sub/res.
func inDialog(sub *sip.Request, res *sip.Response, cseq uint32, expires int) *sip.Request {
	req := sip.NewRequest(sip.SUBSCRIBE, res.Contact().Address)
	from, to := *sub.From(), *res.To()
	from.Params, to.Params = from.Params.Clone(), to.Params.Clone()
	req.AppendHeader(&from)
	req.AppendHeader(&to)
	cid := sip.CallIDHeader(sub.CallID().Value())
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.SUBSCRIBE})
	req.AppendHeader(&sip.ContactHeader{Address: *sub.Contact().Address.Clone()})
	req.AppendHeader(sip.NewHeader("Event", "presence"))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	return req
}

func (l *presenceLoop) presence(t *testing.T, from, to, typ, inner string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st := &xmpp.Stanza{Name: "presence", From: jid.MustParse(from), To: jid.MustParse(to), Type: typ, Inner: []byte(inner)}
	if err := l.peer.Send(ctx, st); err != nil {
		t.Fatal(err)
	}
}

// stanza waits for the next stanza at the peer, which must match.
func (l *presenceLoop) stanza(t *testing.T, what, typ, from string, contains ...string) *xmpp.Stanza {
	t.Helper()
	st := recv(t, l.peerIn, what)
	ok := st.Name == "presence" && st.Type == typ && st.From.String() == from
	for _, c := range contains {
		ok = ok && strings.Contains(string(st.Inner), c)
	}
	if !ok {
		t.Fatalf("%s: peer got %s, want presence type %q from %s containing %q", what, st, typ, from, contains)
	}
	return st
}

func subState(m *sip.Request) string {
	if h := m.GetHeader("Subscription-State"); h != nil {
		return h.Value()
	}
	return ""
}

const alicePIDF = `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:alice@litware.test">
<tuple id="t1"><status><basic>open</basic></status></tuple>
<dm:person id="p"><rpid:activities><rpid:away/></rpid:activities><dm:note>Обед 🍜 — back at 2</dm:note></dm:person>
</presence>`

// An XMPP user watches a SIP user (RFC 7248 §4).
func TestPresenceXMPPWatchesSIP(t *testing.T) {
	l := startPresenceLoop(t)
	const dave, alice = "dave@peer.test", "alice@litware.test"

	l.presence(t, dave+"/laptop", alice, "subscribe", "")
	s := recv(t, l.subsIn, "SUBSCRIBE at the Edge")
	if got := s.req.From().Address.String(); got != "sip:"+dave {
		t.Errorf("SUBSCRIBE From %s, want sip:%s", got, dave)
	}
	if got := s.req.Recipient.String(); got != "sip:"+alice {
		t.Errorf("SUBSCRIBE Request-URI %s, want sip:%s", got, alice)
	}
	for h, want := range map[string]string{"Event": "presence", "Accept": "application/pidf+xml", "Expires": "3600"} {
		if got := s.req.GetHeader(h); got == nil || got.Value() != want {
			t.Errorf("SUBSCRIBE %s: %v, want %s", h, got, want)
		}
	}

	t.Run("pending tells nothing", func(t *testing.T) {
		if got := l.notify(t, s, 1, "pending;expires=3600", ""); got != 200 {
			t.Fatalf("NOTIFY answered %d", got)
		}
	})
	t.Run("active: subscribed, then the PIDF as presence", func(t *testing.T) {
		if got := l.notify(t, s, 2, "active;expires=3600", alicePIDF); got != 200 {
			t.Fatalf("NOTIFY answered %d", got)
		}
		// Nothing arrived for pending: the first stanza is 'subscribed'.
		l.stanza(t, "subscribed", "subscribed", alice)
		l.stanza(t, "presence", "", alice, "<show>away</show>", "<status>Обед 🍜 — back at 2</status>")
	})
	t.Run("probe answered from the last NOTIFY", func(t *testing.T) {
		l.presence(t, dave, alice, "probe", "")
		l.stanza(t, "probe answer", "", alice, "<show>away</show>", "Обед 🍜")
	})
	t.Run("subscribe again is answered at once", func(t *testing.T) {
		l.presence(t, dave, alice, "subscribe", "")
		l.stanza(t, "subscribed again", "subscribed", alice)
		l.stanza(t, "presence again", "", alice, "<show>away</show>")
		select {
		case s2 := <-l.subsIn:
			t.Errorf("a second SUBSCRIBE went out: %s", s2.req.StartLine())
		case <-time.After(200 * time.Millisecond):
		}
	})
	t.Run("unsubscribe: SUBSCRIBE Expires 0, unavailable", func(t *testing.T) {
		l.presence(t, dave, alice, "unsubscribe", "")
		un := recv(t, l.subsIn, "unsubscribing SUBSCRIBE")
		if e := un.req.GetHeader("Expires"); e == nil || e.Value() != "0" || un.req.CallID().Value() != s.req.CallID().Value() {
			t.Errorf("unsubscribe: Expires %v Call-ID %s, want 0 in the dialog", e, un.req.CallID().Value())
		}
		l.stanza(t, "unavailable", "unavailable", alice)
		if got := l.notify(t, s, 3, "terminated;reason=timeout", ""); got != 200 {
			t.Errorf("final NOTIFY answered %d", got)
		}
		select {
		case st := <-l.peerIn:
			t.Errorf("the final NOTIFY sent %s", st)
		case <-time.After(200 * time.Millisecond):
		}
	})
	t.Run("rejected: unsubscribed and unavailable", func(t *testing.T) {
		l.presence(t, dave, alice, "subscribe", "")
		s := recv(t, l.subsIn, "new SUBSCRIBE")
		l.notify(t, s, 1, "active;expires=3600", alicePIDF)
		l.stanza(t, "subscribed", "subscribed", alice)
		l.stanza(t, "presence", "", alice)
		l.notify(t, s, 2, "terminated;reason=rejected", "")
		l.stanza(t, "unsubscribed", "unsubscribed", alice)
		l.stanza(t, "unavailable", "unavailable", alice)
	})
	t.Run("probe after a restart fetches the state by a refresh", func(t *testing.T) {
		l.presence(t, dave, alice, "subscribe", "")
		s := recv(t, l.subsIn, "new SUBSCRIBE")
		l.notify(t, s, 1, "active;expires=3600", "")
		l.stanza(t, "subscribed", "subscribed", alice)
		l.restart(t)
		l.presence(t, dave, alice, "probe", "")
		r := recv(t, l.subsIn, "refreshing SUBSCRIBE")
		if r.req.CallID().Value() != s.req.CallID().Value() || r.req.GetHeader("Expires").Value() == "0" {
			t.Fatalf("probe sent %s Call-ID %s Expires %s, want a refresh in the dialog", r.req.StartLine(), r.req.CallID().Value(), r.req.GetHeader("Expires").Value())
		}
		l.notify(t, s, 2, "active;expires=3600", alicePIDF)
		// After the restart the gateway no longer knows X was told
		// 'subscribed'; a repeat is ignored by X's server (RFC 6121 §3.1.6).
		l.stanza(t, "subscribed again", "subscribed", alice)
		l.stanza(t, "presence from the refresh", "", alice, "<show>away</show>", "Обед 🍜")
	})
	t.Run("refused SUBSCRIBE is a presence error", func(t *testing.T) {
		l.presence(t, dave, "ghost@litware.test", "subscribe", "")
		st := l.stanza(t, "error", "error", "ghost@litware.test", "item-not-found", "404")
		t.Logf("peer got %s", st)
	})
	t.Run("unanswered SUBSCRIBE is a presence error", func(t *testing.T) {
		l.presence(t, dave, "mute@litware.test", "subscribe", "")
		st := l.stanza(t, "error", "error", "mute@litware.test", "remote-server-timeout")
		t.Logf("peer got %s", st)
	})
}

// A SIP user watches an XMPP user (RFC 7248 §5), across a gateway restart.
func TestPresenceSIPWatchesXMPP(t *testing.T) {
	l := startPresenceLoop(t)
	const carol, alice = "carol@peer.test", "alice@litware.test"

	sub, res := l.subscribe(t, carol, 600)
	if res.StatusCode != 200 || res.To() == nil || !res.To().Params.Has("tag") {
		t.Fatalf("SUBSCRIBE answered %d, To %v", res.StatusCode, res.To())
	}
	l.stanza(t, "subscribe at the peer", "subscribe", alice)
	if n := recv(t, l.notifyIn, "first NOTIFY"); !strings.HasPrefix(subState(n), "pending") {
		t.Fatalf("first NOTIFY %q, want pending", subState(n))
	}

	t.Run("subscribed: NOTIFY active", func(t *testing.T) {
		l.presence(t, carol, alice, "subscribed", "")
		n := recv(t, l.notifyIn, "approving NOTIFY")
		if !strings.HasPrefix(subState(n), "active") {
			t.Errorf("NOTIFY %q, want active", subState(n))
		}
	})
	t.Run("status change: NOTIFY with PIDF, text byte for byte", func(t *testing.T) {
		const status = "Обед 🍜 — 会議中 e\u0301"
		l.presence(t, carol+"/desk", alice, "", "<show>away</show><status>"+status+"</status>")
		n := recv(t, l.notifyIn, "NOTIFY with the status")
		body := string(n.Body())
		if !strings.HasPrefix(subState(n), "active") || !strings.Contains(body, "<basic>open</basic>") ||
			!strings.Contains(body, "<rpid:away/>") || !strings.Contains(body, ">"+status+"</") {
			t.Errorf("NOTIFY %q with body:\n%s", subState(n), body)
		}
		if ct := n.ContentType(); ct == nil || ct.Value() != "application/pidf+xml" {
			t.Errorf("Content-Type %v", ct)
		}
	})
	t.Run("refresh keeps the dialog and the state", func(t *testing.T) {
		rr := l.do(t, inDialog(sub, res, sub.CSeq().SeqNo+1, 600))
		if rr.StatusCode != 200 {
			t.Fatalf("refresh answered %d", rr.StatusCode)
		}
		n := recv(t, l.notifyIn, "NOTIFY after the refresh")
		if !strings.HasPrefix(subState(n), "active") || !strings.Contains(string(n.Body()), "<rpid:away/>") {
			t.Errorf("NOTIFY %q body %s", subState(n), n.Body())
		}
	})
	t.Run("restart keeps the subscription", func(t *testing.T) {
		l.restart(t)
		l.presence(t, carol+"/desk", alice, "", "<show>dnd</show><status>after the restart</status>")
		n := recv(t, l.notifyIn, "NOTIFY after the restart")
		if n.CallID().Value() != sub.CallID().Value() || !strings.Contains(string(n.Body()), "<rpid:busy/>") ||
			!strings.Contains(string(n.Body()), "after the restart") {
			t.Errorf("NOTIFY Call-ID %s (want %s) body %s", n.CallID().Value(), sub.CallID().Value(), n.Body())
		}
	})
	t.Run("unsubscribed: NOTIFY terminated;reason=rejected", func(t *testing.T) {
		l.presence(t, carol, alice, "unsubscribed", "")
		n := recv(t, l.notifyIn, "terminating NOTIFY")
		if subState(n) != "terminated;reason=rejected" {
			t.Errorf("NOTIFY %q, want terminated;reason=rejected", subState(n))
		}
		if rr := l.do(t, inDialog(sub, res, sub.CSeq().SeqNo+2, 600)); rr.StatusCode != 481 {
			t.Errorf("refresh after the end answered %d, want 481", rr.StatusCode)
		}
	})
	t.Run("SIP unsubscribe: XMPP unsubscribe", func(t *testing.T) {
		sub, res := l.subscribe(t, carol, 600)
		l.stanza(t, "subscribe at the peer", "subscribe", alice)
		recv(t, l.notifyIn, "pending NOTIFY")
		if rr := l.do(t, inDialog(sub, res, sub.CSeq().SeqNo+1, 0)); rr.StatusCode != 200 {
			t.Fatalf("unsubscribe answered %d", rr.StatusCode)
		}
		l.stanza(t, "unsubscribe at the peer", "unsubscribe", alice)
		if n := recv(t, l.notifyIn, "final NOTIFY"); !strings.HasPrefix(subState(n), "terminated") {
			t.Errorf("final NOTIFY %q", subState(n))
		}
	})
}

// Presence from XMPP users no SIP user watches is not kept: a peer cannot
// grow the gateway's memory by sending it from ever new JIDs.
func TestPresenceUnwatchedNotKept(t *testing.T) {
	l := startPresenceLoop(t)
	const senders = 50
	for i := range senders {
		l.presence(t, fmt.Sprintf("u%d@peer.test/r%d", i, i), "alice@litware.test", "", "<show>chat</show>")
	}
	// Each stanza runs on its own lane: wait for all of them to be handled.
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(l.logs.String(), "xmpp presence not kept: no SIP user watches") < senders {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d presences handled within 10 s", strings.Count(l.logs.String(), "xmpp presence not kept"), senders)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := l.srv.PresenceView().Len(); n != 0 {
		t.Errorf("presence view holds %d users, want 0", n)
	}
}

// presenceTables renders translate's presence tables as the README shows
// them.
func presenceTables() string {
	var b strings.Builder
	b.WriteString("Subscription actions (RFC 7248 §4, [translate.SubscriptionMapping](gateway/translate/presence.go)):\n\n")
	b.WriteString("| XMPP presence type | SIP |\n|---|---|\n")
	for _, r := range translate.SubscriptionMapping {
		fmt.Fprintf(&b, "| `%s` | %s |\n", r.XMPP, r.SIP)
	}
	b.WriteString("\nXMPP `<show/>` -> PIDF (RFC 7248 §5, [translate.PresenceMapping](gateway/translate/presence.go)); `type='unavailable'` is `<basic>closed</basic>`, `<status/>` is the `<note/>`:\n\n")
	b.WriteString("| `<show/>` | `<basic>` | RPID activity |\n|---|---|---|\n")
	for _, r := range translate.PresenceMapping {
		show, act := r.Show, r.Activity
		if show == "" {
			show = "(none)"
		}
		if act == "" {
			act = "-"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", show, r.Basic, act)
	}
	b.WriteString("\nRPID activity -> XMPP `<show/>` ([translate.ActivityShow](gateway/translate/presence.go); the most restrictive wins, others leave plain available):\n\n")
	b.WriteString("| activity | `<show/>` |\n|---|---|\n")
	acts := make([]string, 0, len(translate.ActivityShow))
	for a := range translate.ActivityShow {
		acts = append(acts, a)
	}
	sort.Strings(acts)
	for _, a := range acts {
		fmt.Fprintf(&b, "| %s | %s |\n", a, translate.ActivityShow[a])
	}
	return b.String()
}

// README's presence tables come from translate's; -update rewrites them.
func TestREADMEPresence(t *testing.T) {
	const (
		path  = "../README.md"
		begin = "<!-- presence tables: generated by go test ./gateway -run TestREADMEPresence -update -->\n"
		end   = "<!-- end of presence tables -->\n"
	)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(data), begin)
	got, after, ok2 := strings.Cut(rest, end)
	if !ok1 || !ok2 {
		t.Fatalf("README.md lacks the markers %q ... %q around the presence tables", begin, end)
	}
	want := presenceTables()
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(before+begin+want+end+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's presence tables differ from translate's; run go test ./gateway -run TestREADMEPresence -update")
}
