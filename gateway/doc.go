// Package gateway is xgw proper (`xgw serve`): it runs the XMPP s2s server
// (gateway/xmpp) for the SIP domains and the SIP endpoint facing the Edge
// (gateway/sip), and relays between them through the pure functions of
// gateway/translate.
//
//	srv, err := gateway.New(cfg, gateway.WithLogger(log), gateway.WithStateDir("/var/lib/xgw"))
//	err = srv.Serve(ctx) // until ctx ends (graceful stop, nil) or a side fails
//
// # Routing
//
// route.go holds the two Handler implementations and only routes: message
// stanzas and SIP MESSAGE (text and typing) to message.go; presence stanzas
// and SUBSCRIBE/NOTIFY to presence.go (RFC 7248).
//
// # Messages and typing (RFC 7572, RFC 3994, XEP-0085)
//
// SIP to XMPP: translate.Mapper.MessageFromSIP, then xmpp.Server.Send. An
// isComposing MESSAGE becomes a chat-state-only message whose stanza id
// starts with "cs-", so that its bounce is recognised and only logged.
// XMPP to SIP: translate.MessageFromInner and Mapper.MessageToSIP, then
// sip.Endpoint.SendMessage through the Edge: a body (with or without a chat
// state) is one text MESSAGE, a chat state alone an isComposing MESSAGE.
// These run in lanes (lanes.go), one per conversation: in order within a
// conversation, concurrently across them, so one partner stream is not held
// to one message per Edge round trip.
//
// # Errors (RFC 7247 §6)
//
// XMPP to SIP, the gateway waits for the Edge's final response: a non-2xx
// becomes the stanza error of translate.ConditionForStatus, no response
// remote-server-timeout, an unreachable Edge service-unavailable, and the
// lane bounces the stanza to its sender (RFC 6120 §8.3.1).
//
// SIP to XMPP, the MESSAGE is answered once the stanza is written or
// queued (200), or at once with translate.StatusForCondition of the pool's
// refusal. A bounce that comes later (the pool could not reach the partner,
// or the partner answered with an error) is a type='error' message to our
// user: the sender is told by a MESSAGE from the XMPP address, naming the
// condition and quoting the original text when the bounce echoes it. This
// was chosen over holding the transaction until the stream is up: the
// partner's own bounces arrive after any answer anyway, so the notice path
// is needed in every case, and holding a transaction while a stream is set
// up (seconds with Prosody's dialback, up to the 30 s negotiation timeout)
// would outlast the SIP endpoint's handler timeout (10 s, answered 504).
//
// # Lifecycle
//
// Serve binds both listeners (or uses the injected s2s listener), serves
// until ctx ends or a side fails, then drains: new messages are refused
// (503, service-unavailable), handlers in flight get the drain timeout, the
// s2s streams close and their queued stanzas bounce to SIP senders while
// the SIP endpoint is still up, and the endpoint closes last.
package gateway
