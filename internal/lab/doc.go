// Package lab runs the real third-party peers xgw is tested against, inside
// the network namespace of scripts/test.sh: Prosody 0.12 (this file set),
// Kamailio (kamailio.go), the DNS server they resolve through, and a small
// XMPP client that drives Prosody users.
//
// # Topology
//
// scripts/test.sh runs `go test` in a fresh network namespace of its own
// (XGW_NETNS names it). There the whole 127.0.0.0/8 is the tests' own, so
// every peer takes its own address with the standard ports, and
// /etc/resolv.conf (bind-mounted from /etc/netns/NAME/) says
// `nameserver 127.0.0.53`:
//
//	127.0.0.53:53         DNS53: in-process authoritative DNS (UDP+TCP)
//	127.0.1.1:5222,5269   Prosody for a.test (c2s, s2s), e.g.
//	127.0.1.2:5222,5269   Prosody for b.test
//	127.0.1.3:5222,5269   ejabberd for e.test (ejabberd.go), e.g.
//	127.0.0.1             where clients and Prosody's outgoing s2s connect from
//
// Prosody's own resolver reads only the nameserver lines of resolv.conf, only
// uses port 53 and ignores /etc/hosts, so a domain exists for Prosody only if
// DNS53 serves it: ServerZone gives the A and SRV records
// (_xmpp-server._tcp -> DOMAIN:5269, _xmpp-client._tcp -> DOMAIN:5222).
// Names under .test work because Debian's prosody is installed without
// lua-unbound (scripts/install-peers.sh uses --no-install-recommends); its
// log then says "Using legacy DNS API".
//
// # Helpers
//
//   - DNS53(t, zones...) serves zones on 127.0.0.53:53 until the test ends.
//     It holds the lab lock (an flock under /run, per namespace) meanwhile, so
//     test binaries that `go test -p 2` runs at once take turns for port 53
//     and for the lab's fixed addresses. Call it first in every lab test.
//   - StartProsody(t, ProsodyConfig) writes prosody.cfg.lua (one VirtualHost,
//     modules roster, saslauth, tls, dialback, disco, ping; debug log to a
//     file), registers the users with prosodyctl, runs Prosody as user
//     prosody and waits until c2s and s2s accept. It stops Prosody by PID
//     when the test ends and prints the log's tail if the test failed. The
//     knobs select how s2s authenticates: dialback by default (each
//     instance has a certificate from its own CA, which no peer trusts),
//     SASL EXTERNAL with TrustCA and certificates from that CA,
//     DialbackOnly, RequireEncryption, S2SSecureAuth, NoS2STLS.
//   - StartEjabberd(t, EjabberdConfig) does the same for Debian's ejabberd
//     23.01: its own ejabberd.yml (c2s and s2s on Addr only, STARTTLS
//     optional on s2s, mod_s2s_dialback, ping, disco, roster), its own
//     --config-dir, --ctl-config, inetrc and Erlang cookie, a unique node
//     name and ERL_DIST_PORT (no epmd). It runs `ejabberdctl foreground` as
//     user ejabberd, waits (60 s at most; ~4-7 s seen) for c2s and s2s,
//     registers the users with `ejabberdctl register` (~2-4 s: each call
//     boots an Erlang VM) and stops the VM and every process under it by
//     PID when the test ends. ejabberd resolves SRV with Erlang's inet_res
//     (the namespace's resolv.conf, so DNS53) and A via hosts then the
//     system resolver. TrustCA (s2s_cafile) lets a peer with a certificate
//     from that CA in by SASL EXTERNAL; otherwise ejabberd falls back to
//     dialback. WaitLog waits for a log line, e.g. ejabberd closing its s2s
//     stream to a peer the test restarts (a stanza routed into a closing
//     stream is lost).
//   - Login(t, ctx, addr, jid, password) is a c2s client (mellium.im/xmpp):
//     STARTTLS, SCRAM-SHA-1 or PLAIN, resource binding, initial presence.
//     It keeps every stanza received; WaitFor(ctx, match) returns the next
//     matching one. SendMessage, SendPresence, Subscribe and Ping (XEP-0199)
//     send, each bounded by its ctx.
//
// # Example
//
//	lab.DNS53(t, lab.ServerZone("a.test", "127.0.1.1"), lab.ServerZone("b.test", "127.0.1.2"))
//	a := lab.StartProsody(t, lab.ProsodyConfig{Domain: "a.test", Addr: "127.0.1.1",
//		Users: map[string]string{"alice": "pw"}})
//	b := lab.StartProsody(t, lab.ProsodyConfig{Domain: "b.test", Addr: "127.0.1.2",
//		Users: map[string]string{"bob": "pw"}})
//	alice := lab.Login(t, ctx, a.C2SAddr, "alice@a.test", "pw")
//	bob := lab.Login(t, ctx, b.C2SAddr, "bob@b.test", "pw")
//	err := alice.SendMessage(ctx, "bob@b.test", "привет")
//	msg, err := bob.WaitFor(ctx, lab.MessageFrom("alice@a.test"))
//
// # Running
//
//	bash scripts/test.sh ./internal/lab/
//
// Outside the namespace (plain `go test`) the lab tests skip, and in CI
// (CI=true) they fail, as internal/testenv decides. Expect a few seconds for
// the first stanza over a new s2s link: Prosody 0.12's resolver waits a
// random 0-1 s before each DNS query, and dialback needs lookups both ways.
package lab
