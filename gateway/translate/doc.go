// Package translate holds xgw's pure SIP <-> XMPP translation functions: no
// network, no sessions, no logging. The SIP side (gateway/sip) and the XMPP
// side (gateway/xmpp) call it and own everything stateful (transactions,
// subscription dialogs, streams). It imports only gateway/config, sipgo's sip
// package, mellium's jid, stanza and xmlstream, and golang.org/x/{text,net}.
//
// # The seam
//
// A [Mapper], built once from the config with [NewMapperFromConfig], knows
// which domains are ours (sip.domains) and which are partners
// (xmpp.federation, xmpp.open, xmpp.deny). It is safe for concurrent use.
//
// Messages, SIP to XMPP: the SIP side hands the *sip.Request of a MESSAGE to
// [Mapper.MessageFromSIP] and gets a [Message]; the XMPP side writes it with
// [Message.AppendXML] (raw jabber:server bytes) or [Message.TokenReader] (for
// mellium's Session.Send).
//
// Messages, XMPP to SIP: the XMPP side turns a stanza into a Message with
// [MessageFromInner] (attributes plus the payload bytes, i.e. gateway/xmpp's
// Stanza; a fast scanner with encoding/xml as fallback), [MessageFromStanza]
// (a token stream, inside a mellium mux handler) or [DecodeMessage] (a
// whole stanza as bytes); the
// SIP side calls [Mapper.MessageToSIP] for a [SIPMessage] and
// [SIPMessage.Request] for the *sip.Request to give sipgo's client, which adds
// Via, CSeq, Max-Forwards and, when CallID is empty, a Call-ID.
//
// Presence: [PresenceFromPIDF] and [Mapper.PIDFFromPresence] convert bodies;
// [Presence.AppendXML] and [PresenceFromStanza] the stanzas;
// [SIPActionFor], [PresenceTypeForSubscribe], [PresenceTypeForNotify] and
// [ParseSubscriptionState] tell the subscription code what to send.
//
// Failures: [MapError] turns any error from this package, or a gateway
// failure wrapped around [ErrEdgeUnreachable], [ErrEdgeTimeout],
// [ErrPartnerUnreachable], [ErrPartnerTimeout] or [ErrOverloaded], into a
// [Mapped] answer: a SIP status and reason (plus [Mapped.Warning] text) and an
// XMPP condition and type ([Message.AppendErrorReply] writes the bounce).
// A final SIP response to a request from XMPP maps with [ConditionForStatus];
// a stanza error for a message from SIP with [StatusForCondition].
//
// # Decisions
//
// Addresses (RFC 7247 §5): user@domain <-> sip:user@domain with the same
// domain. The user part is percent-decoded and XEP-0106-escaped into the
// localpart (and back: [Escape], [Unescape]; mellium's jid.Unescape is
// broken), then PRECIS-folded, so SIP user names are case-insensitive here.
// A resource is a GRUU instance: the RFC 5627 "gr" URI parameter (RFC 7247
// §5.3), or the "opaque" parameter of a Microsoft ";gruu" URI, which is what
// OCS, Lync and Skype for Business send. From/To carry the bare address
// (address of record); a sender's GRUU travels in Contact, a target's in the
// Request-URI.
//
// Correlation (RFC 7572 §4-§5): Call-ID <-> <thread/>. The stanza id of a
// SIP-originated message is a hash of Call-ID and CSeq, so a retransmitted
// MESSAGE produces the same id and an error bounce names the transaction.
// An XMPP thread becomes the Call-ID only when it is a valid Call-ID
// (RFC 3261 §25.1); otherwise sipgo generates one.
//
// Text: bodies are UTF-8 end to end. A SIP body in another declared charset
// is transcoded with golang.org/x/text; an undeclared non-UTF-8 body, bytes
// invalid in the declared charset and characters XML 1.0 forbids are refused
// with a *BodyError naming the byte and offset, never replaced by "?" or
// U+FFFD (the "????" of the OCS gateway era). Hostile XML (DOCTYPE, entities,
// oversized documents) is refused before it costs memory.
//
// The mapping tables are exported as data for the README:
// [PresenceMapping], [ActivityShow], [SubscriptionMapping],
// [ChatStateMapping], [SIPToXMPPErrors], [XMPPToSIPErrors].
//
// # RFCs and XEPs covered
//
//   - RFC 7247 §5 address mapping (§5.2 local part, §5.3 instances/GRUU,
//     §5.4 SIP to XMPP, §5.5 XMPP to SIP), §6 error mapping
//   - RFC 7572 §4 (XMPP to SIP) and §5 (SIP to XMPP) single messages over
//     SIP MESSAGE (RFC 3428), with message/cpim bodies (RFC 3862 §3)
//   - RFC 7248 §4 subscriptions (with RFC 6665 Subscription-State) and §5
//     notifications: PIDF (RFC 3863) with RPID activities (RFC 4480).
//     RFC 8048 obsoletes RFC 7248; its changes are not reviewed here yet.
//   - RFC 3994 isComposing <-> XEP-0085 chat states
//   - XEP-0106 JID escaping; RFC 7622 PRECIS via mellium's jid
package translate
