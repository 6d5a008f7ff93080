// Package sip is the gateway's SIP side: one endpoint facing the Edge
// (SfB/Lync Edge, Kamailio, OpenSIPS, Asterisk), built on sipgo.
//
// It knows nothing of XMPP. The rest of the gateway talks to it through
// Handler (requests and dialog events arriving from the Edge) and the
// Endpoint methods (requests we originate):
//
//	ep, err := sip.New(cfg)        // cfg.Handler receives inbound traffic
//	go ep.Serve(ctx)               // listener on cfg.Listen + keepalive + resumed subscriptions
//	res, err := ep.SendMessage(ctx, OutboundMessage{...})  // RFC 3428
//	sub, err := ep.Subscribe(ctx, SubscribeRequest{...})   // RFC 6665 subscriber
//	err = ep.Refresh(sub.ID)                               // re-SUBSCRIBE now: a NOTIFY with the full state follows
//	err = ep.Notify(ctx, sub.ID, Notification{...})        // RFC 6665 notifier
//
// # Transport
//
// Every request we originate leaves through the Edge (cfg.Edge, the
// outbound proxy of RFC 3261 §8.1.2) unless a dialog's route set names a
// first hop. Over TLS we present cfg.Certificate and verify the Edge
// against cfg.RootCAs and cfg.Edge.Name; the listener requires a client
// certificate chaining to cfg.RootCAs and naming cfg.Edge.Name, and refuses
// any other with a log line naming the presented subject. Connections are
// reused (sipgo's pool, keyed by remote ip:port). Our Contact is
// cfg.Contact (FromConfig: xmpp.internal_fqdn and the listening port).
//
// # Timeouts and errors
//
// A Handler call gets cfg.HandlerTimeout; past it the request is answered
// 504 for it. Our requests wait for a final response until their context
// ends (cfg.RequestTimeout when it has no deadline); errors wrap
// ErrTimeout (sent, no answer) or ErrTransport (could not send). Under
// TLS 1.3 an Edge that rejects our certificate does so after our side of
// the handshake completed, so that case shows up as ErrTimeout, not
// ErrTransport. The OPTIONS keepalive (cfg.KeepaliveInterval) keeps
// EdgeHealth up to date and logs each up/down change.
//
// # Hostile input
//
// Stream and datagram input pass a guard before sipgo's parser: a message
// larger than cfg.MaxMessageSize gets 513, a body larger than
// cfg.MaxBodySize gets 413, a request with a broken start line or missing
// mandatory header gets 400, and bytes that are not SIP are dropped (on a
// stream, the connection is closed). A message must arrive whole within
// 30 s of its first byte. At most cfg.MaxConcurrent requests are handled
// at once; beyond that the answer is 503 with Retry-After. The guard covers
// the listener; connections we open to the Edge rely on sipgo's parser
// limit (cfg.MaxMessageSize), which closes the connection on excess.
//
// # Subscription dialogs (RFC 6665, event package presence RFC 3856)
//
// sipgo has dialogs for INVITE only, so SUBSCRIBE/NOTIFY dialogs live here.
// A dialog is identified by Call-ID, local tag and remote tag (RFC 3261
// §12). Its state, persisted through Store before any 2xx is sent:
//
//	event                          role        dialog action                         store    handler call
//	SUBSCRIBE, no To tag           notifier    create: route set = Record-Route      Put      HandleSubscribe(ChangeNew)
//	                                           (in order), target = Contact,
//	                                           Expires clamped to [Min,Max] or 423
//	SUBSCRIBE in dialog, Expires>0 notifier    refresh: new expiry, CSeq must grow   Put      HandleSubscribe(ChangeRefresh)
//	SUBSCRIBE in dialog, Expires:0 notifier    terminate, NOTIFY terminated;timeout  Delete   HandleSubscribe(ChangeUnsubscribe)
//	expiry timer fires             notifier    NOTIFY terminated;reason=timeout      Delete   HandleEnded
//	Notify() / 481 or no answer    notifier    failed NOTIFY terminates (§4.2.2)     Delete   HandleEnded
//	Subscribe() 2xx                subscriber  create: route set = Record-Route      Put      -
//	                                           reversed, target = Contact
//	NOTIFY before the 2xx          subscriber  create from the NOTIFY (§4.1.2.4)     Put      HandleNotify
//	NOTIFY in dialog               subscriber  CSeq must grow (else 500), target     Put if   HandleNotify
//	                                           refresh, expires from                 changed
//	                                           Subscription-State
//	NOTIFY terminated              subscriber  terminate after the handler answers   Delete   HandleNotify
//	refresh timer                  subscriber  in-dialog SUBSCRIBE; 423 retried      Put      -
//	                                           with Min-Expires; failure ends it              HandleEnded
//	Unsubscribe()                  subscriber  SUBSCRIBE Expires:0, dialog lingers   Delete   -
//	                                           for the final NOTIFY
//	request in unknown dialog      both        481 Call/Transaction Does Not Exist   -        -
//	unknown Event package          both        489 Bad Event with Allow-Events       -        -
//
// Our in-dialog requests are sent one at a time per dialog (a NOTIFY waits
// for the previous one's final response, RFC 6665 §4.2.2). On start,
// Serve reloads the Store, drops what expired while we were down (calling
// HandleEnded) and re-arms expiry and refresh timers. The local CSeq is
// written with each dialog change and advanced by cseqGap on reload, so a
// request sent after the last write never reuses a number.
//
// Not covered: strict routing (Route without ;lr), automatic
// re-subscription after a terminated NOTIFY (the handler decides from the
// reason), Microsoft BENOTIFY/msrtc extensions. Over UDP sipgo refuses to
// send more than 1300 bytes (no switch to TCP), so large PIDF documents
// need TCP or TLS.
package sip

import (
	"context"

	"github.com/emiago/sipgo/sip"
)

// Handler receives what the Edge sends. The endpoint calls it from its own
// goroutines with a context that ends after Config.HandlerTimeout; a handler
// that returns later is answered 504 on its behalf and its result dropped.
type Handler interface {
	// HandleMessage gets an inbound MESSAGE (RFC 3428) and returns the final
	// status (200-699) and an optional reason phrase.
	HandleMessage(ctx context.Context, req *sip.Request) (status int, reason string)

	// HandleSubscribe is called when the Edge creates, refreshes or ends a
	// subscription to one of our (XMPP-side) users. For New and Refresh the
	// answer's Status (2xx accepts) decides the SUBSCRIBE's response and its
	// body, when set, goes into the NOTIFY sent right after (RFC 6665
	// §4.2.1.2); for Unsubscribe only the body is used.
	HandleSubscribe(ctx context.Context, change Change, sub Subscription) Answer

	// HandleNotify gets a NOTIFY on a subscription we created; sub already
	// carries the state from its Subscription-State header. The returned
	// status answers the NOTIFY.
	HandleNotify(ctx context.Context, sub Subscription, req *sip.Request) (status int)

	// HandleEnded reports a dialog that ended without a request from the
	// peer: expiry, a failed refresh or a NOTIFY that got no answer.
	HandleEnded(ctx context.Context, sub Subscription, reason string)
}

// Change says what a SUBSCRIBE did to a subscription.
type Change int

// Kinds of Change.
const (
	ChangeNew Change = iota + 1
	ChangeRefresh
	ChangeUnsubscribe
)

func (c Change) String() string {
	switch c {
	case ChangeNew:
		return "new"
	case ChangeRefresh:
		return "refresh"
	case ChangeUnsubscribe:
		return "unsubscribe"
	}
	return "unknown"
}

// Answer is the handler's decision on a SUBSCRIBE.
type Answer struct {
	// Status answers the SUBSCRIBE: 200 accepts with state active, 202
	// accepts with state pending (sent on the wire as 200, RFC 6665 §8.3.1),
	// anything else refuses.
	Status int
	// ContentType and Body, when set, go into the NOTIFY that follows.
	ContentType string
	Body        []byte
}
