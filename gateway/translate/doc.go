// Package translate holds xgw's pure SIP <-> XMPP translation functions: no
// network, no sessions, no logging. The SIP side (gateway/sip) and the XMPP
// side (gateway/xmpp) call it and own everything stateful.
//
// # The seam
//
// XMPP side: [Message] (a <message/> as plain fields: From, To, ID, Thread,
// Type, Subject, Body, ChatState, Lang) and [Presence]. Build a Message from
// a stanza with [MessageFromStanza] or [DecodeMessage]; write one with
// [Message.AppendXML] (raw bytes, jabber:server) or [Message.TokenReader]
// (for mellium's Session.Send).
//
// SIP side: [SIPMessage], the parts of a MESSAGE request the gateway sets
// (Request-URI, From, To, Contact, Call-ID, Subject, Content-Language,
// Content-Type, body). [Mapper.MessageFromSIP] reads a *sip.Request;
// [Mapper.MessageToSIP] produces a SIPMessage and [SIPMessage.Request] turns
// it into a *sip.Request for sipgo's client, which adds Via, CSeq and
// Max-Forwards.
//
// Addresses go through a [Mapper] built from the config (sip.domains are our
// users, xmpp.federation the partners); see address.go for the rules
// (RFC 7247 §5). Errors map to both protocols through [MapError],
// [ConditionForStatus] and [StatusForCondition] (RFC 7247 §6).
//
// # Text
//
// Bodies are UTF-8 end to end. A SIP body in another declared charset is
// transcoded with golang.org/x/text; an undeclared non-UTF-8 body, bytes that
// are invalid in the declared charset, and characters XML 1.0 forbids are
// refused with a *BodyError, never replaced by "?" or U+FFFD (the "????" of
// the OCS gateway era).
//
// # RFCs and XEPs covered
//
//   - RFC 7247 §5 address mapping, §6 error mapping
//   - RFC 7572 §4-§5 single messages (SIP MESSAGE, RFC 3428), with
//     message/cpim (RFC 3862) bodies
//   - RFC 7248 §4-§5 presence and subscriptions, PIDF (RFC 3863) with RPID
//     (RFC 4480)
//   - RFC 3994 isComposing <-> XEP-0085 chat states
//   - XEP-0106 JID escaping
package translate
