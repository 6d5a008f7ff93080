package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/resolve"
)

// xmppPeerCheck follows each allowed partner the way the gateway will
// (RFC 6120 §3.2): SRV or the A fallback, TCP to the port, a stream. It
// is opt-in because it contacts servers outside the LAN.
var xmppPeerCheck = Check{
	ID:    "xmpp.peer",
	Title: "Each federated XMPP partner resolves, is reachable and opens a stream",
	OptIn: true,
	Run:   runXMPPPeers,
}

const (
	// peerParallel bounds the partners probed at once.
	peerParallel = 8
	// peerMaxAddrs bounds the addresses tried per partner, across SRV
	// targets, so a long record set cannot stretch the run.
	peerMaxAddrs = 6
)

func runXMPPPeers(ctx context.Context, env *Env) []Result {
	partners := env.Config.XMPP.Federation
	if len(partners) == 0 {
		return []Result{skip("xmpp.peer", "", "xmpp.federation lists no partner")}
	}
	out := make([]Result, len(partners))
	sem := make(chan struct{}, peerParallel)
	var wg sync.WaitGroup
	for i, p := range partners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = probePeer(ctx, env, p.Domain)
		}()
	}
	wg.Wait()
	return out
}

// peerHop is one place to try: an SRV target or the domain itself.
type peerHop struct {
	host string
	port uint16
}

func probePeer(ctx context.Context, env *Env, domain string) Result {
	const id = "xmpp.peer"
	hops, how, res := peerHops(ctx, env, domain)
	if res != nil {
		return *res
	}
	var lastErr error
	var lastAddr string
	tried := 0
	for _, h := range hops {
		addrs, err := probeAddrs(ctx, env, h.host)
		if err != nil {
			lastErr, lastAddr = fmt.Errorf("%s does not resolve: %w", h.host, err), h.host
			continue
		}
		for _, a := range addrs {
			if tried == peerMaxAddrs || ctx.Err() != nil {
				break
			}
			tried++
			addr := net.JoinHostPort(a.String(), strconv.Itoa(int(h.port)))
			st, err := dialXMPPStream(ctx, env.Dialer, addr, domain)
			if err != nil {
				lastErr, lastAddr = err, addr
				continue
			}
			found := fmt.Sprintf("%s via %s: %s", addr, how, st.summary())
			if st.StreamError != "" {
				return warn(id, domain, found, "a stream for "+domain,
					"the server found for "+domain+" does not serve it: the partner's SRV record points at the wrong server; tell its admin")
			}
			return pass(id, domain, found)
		}
	}
	return peerFailure(domain, how, lastAddr, lastErr)
}

// peerHops resolves where the partner's server is: _xmpp-server._tcp
// targets in RFC 2782 order, else the domain on port 5269. It also notes
// _xmpps-server._tcp (XEP-0368 direct TLS), which xgw does not dial.
func peerHops(ctx context.Context, env *Env, domain string) ([]peerHop, string, *Result) {
	srvs, err := peerSRV(ctx, env, "xmpp-server", domain)
	direct, derr := peerSRV(ctx, env, "xmpps-server", domain)
	how := "_xmpp-server._tcp." + domain + " SRV"
	if derr == nil && len(direct) > 0 && !resolve.NotOffered(direct) {
		how += " (direct TLS _xmpps-server also published)"
	}
	switch {
	case err == nil && resolve.NotOffered(srvs):
		r := fail("xmpp.peer", domain, "_xmpp-server._tcp."+domain+" has the target \".\": the domain says it offers no server-to-server XMPP",
			"an SRV record pointing at the partner's XMPP server",
			"the partner does not federate (RFC 6120 §3.2.1); ask its admin, or remove it from xmpp.federation")
		return nil, "", &r
	case err == nil:
		hops := make([]peerHop, 0, len(srvs))
		for _, s := range srvs {
			hops = append(hops, peerHop{host: strings.TrimSuffix(s.Target, "."), port: s.Port})
		}
		return hops, how, nil
	case peerNotFound(err):
		return []peerHop{{host: domain, port: config.XMPPServerPort}},
			"no SRV record, fallback to " + domain + ":5269 (RFC 6120 §3.2.2)", nil
	}
	r := fail("xmpp.peer", domain, "SRV lookup for "+domain+" failed: "+err.Error(),
		"an answer from DNS", "check that the gateway can reach its DNS server (checks.dns_server)")
	return nil, "", &r
}

// peerSRV asks the run's resolver, or the system's when none is set.
func peerSRV(ctx context.Context, env *Env, service, domain string) ([]*net.SRV, error) {
	if env.Resolver != nil {
		return env.Resolver.SRV(ctx, service, "tcp", domain)
	}
	_, srvs, err := net.DefaultResolver.LookupSRV(ctx, service, "tcp", domain)
	return srvs, err
}

func peerNotFound(err error) bool {
	var de *net.DNSError
	return resolve.IsNotFound(err) || errors.As(err, &de) && de.IsNotFound
}

func peerFailure(domain, how, addr string, err error) Result {
	const id = "xmpp.peer"
	const expected = "an XMPP stream from the partner's server"
	if err == nil {
		return fail(id, domain, "no address to try ("+how+")", expected, "check the partner's DNS records")
	}
	found := err.Error() + " (" + how + ")"
	var se *streamError
	if !errors.As(err, &se) {
		return fail(id, domain, found, expected, "the partner's server name has no address: tell its admin, or check the gateway's DNS")
	}
	switch se.Kind {
	case failRefused:
		return fail(id, domain, found, expected, "nothing listens at "+addr+": the partner's server is down or its SRV record is stale; tell its admin")
	case failSilent:
		return fail(id, domain, found, expected, "the server at "+addr+" accepts connections but does not answer XMPP: it is overloaded or not an XMPP server; tell the partner's admin")
	case failConnectTimeout, failUnreachable:
		return fail(id, domain, found, expected,
			"allow outbound TCP to port 5269 (and the SRV ports) from the gateway through the firewall; if that is open, the partner's server is unreachable")
	}
	return fail(id, domain, found, expected, "something other than XMPP answers at "+addr+": the partner's SRV record or port is wrong; tell its admin")
}
