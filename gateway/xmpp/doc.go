// Package xmpp is xgw's XMPP server-to-server (s2s) layer: the gateway acts
// as an XMPP server for its SIP domains, accepts federated streams on 5269
// and opens streams to remote XMPP domains.
//
// It speaks RFC 6120 streams, STARTTLS, SASL EXTERNAL (XEP-0178) and Server
// Dialback (XEP-0220, keys per XEP-0185) itself, on encoding/xml over a
// byte-limited reader; mellium.im/xmpp supplies only jid and x509 parsing
// (its receiving side and negotiator are not usable for s2s, see
// /work/shared/LIBRARIES.md §2).
//
// # API
//
//	srv, err := xmpp.New(xmpp.Config{Domains: ..., TLS: ..., Resolver: ..., Handler: h})
//	go srv.Serve(ctx, ln)          // inbound streams on a listener you bound (5269)
//	go srv.ServeDirectTLS(ctx, ln) // XEP-0368 direct TLS (5270), optional
//	err = srv.Send(ctx, st)        // outbound, through the stream pool
//	srv.RotateSecret(newSecret)    // previous secret stays valid for in-flight keys
//	srv.Shutdown(ctx)              // close every stream (system-shutdown)
//	srv.Streams()                  // live streams: direction, pairs, auth, TLS
//
// Inbound message and presence stanzas addressed to user@<one of Domains>,
// and iq results/errors for such users, reach [Handler.HandleInbound];
// returning an [*Error] bounces the stanza to its sender with that
// condition. Stanzas the pool could not deliver come back to the Handler
// as type='error' bounces addressed to their sender. Every reply (IQ results, pongs, bounces)
// leaves through an outbound stream, because s2s streams are unidirectional
// (RFC 6120 §4.1; XEP-0288 bidi is not used).
//
// # Streams (RFC 6120 §4)
//
// One stream per TCP connection; any of Config.Domains is accepted as the
// stream's 'to' (virtual hosting, certificate chosen by SNI). Every refusal
// is a stream error (§4.9): host-unknown for a 'to' we do not serve,
// invalid-namespace, not-well-formed, restricted-xml (DTD, entities,
// comments, processing instructions), policy-violation (stanza larger than
// Config.MaxStanzaSize, counted on bytes read before anything is buffered),
// connection-timeout (negotiation or idle deadline), improper-addressing,
// invalid-from (stanza from a domain not authenticated on the stream),
// not-authorized (stanza before authentication), unsupported-stanza-type.
//
// # Authentication
//
// Dialback (XEP-0220), all three roles: originating (our outbound stream
// sends db:result), receiving (an inbound db:result is checked by a separate
// verify connection to the sender's authoritative server found by SRV) and
// authoritative (an inbound db:verify is answered valid/invalid from the
// XEP-0185 key HMAC-SHA256(hex(SHA256(secret)), receiving+" "+originating+" "+streamID)).
// Several domain pairs can be authenticated on one inbound stream
// (multiplexing/piggybacking). Dialback errors (§2.4) are sent as
// type='error' and the feature <dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>
// is advertised.
//
// SASL EXTERNAL (XEP-0178) is offered on an inbound TLS stream whose client
// certificate chains to Config.TLS.RootCAs and names the stream's 'from'
// domain (DNS-ID, SRV-ID _xmpp-server.<domain>, or XmppAddr; RFC 6125 §6).
// Outbound, the choice is deterministic: EXTERNAL when it is offered and
// the peer's certificate validated for its domain and we have a certificate
// for ours; otherwise dialback.
//
// # Federation policy
//
// A remote domain is allowed when it is listed in Config.Federation (or
// Config.Open is set) and not in Config.Deny. Per partner:
//
//	dialback      dialback or SASL EXTERNAL; TLS used when offered
//	tls           TLS with a certificate valid for the domain (SASL EXTERNAL,
//	              or dialback over such a stream)
//	tls+dialback  TLS required (any certificate) and dialback; inbound,
//	              SASL EXTERNAL (a validated certificate) is accepted instead
//
// Open admits unlisted domains with the dialback rule. A refused domain is
// logged and answered with a stream or dialback error whose text names it.
//
// # Outbound pool and limits
//
// One authenticated stream per (local domain, remote domain), found via
// _xmpps-server._tcp (XEP-0368 direct TLS) then _xmpp-server._tcp SRV, else
// the domain's A/AAAA on 5269. Stanzas wait in a bounded queue while it
// connects; on failure each is bounced to its sender with
// remote-server-not-found or remote-server-timeout (internal-server-error
// when the peer found our dialback key invalid, XEP-0220 §2.1.1); then Send
// fails fast with the same condition while a reconnect backoff (1 s
// doubling to 5 min) runs. Idle streams close after Config.IdleTimeout. Config.MaxStreams and Config.MaxStreamsPerPeer bound
// inbound and outbound streams together. An idle authenticated stream
// costs about 22 KB (dialback) or 49 KB (TLS) of heap and stack inbound,
// and an outbound stream with the peer's inbound one about 42 KB
// (BenchmarkIdleInboundStream, BenchmarkIdleStreamPair).
//
// # Logs
//
// Every stream opened, authenticated, refused or closed is one slog line
// with the attributes dir (in|out|verify), peer (address), local, remote and
// reason.
package xmpp
