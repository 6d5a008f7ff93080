package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/xgw-gateway/xgw/gateway/config"
)

// netXMPPCheck proves the path XMPP peers take: external FQDN, the
// firewall's port 5269 forward, and the gateway answering with a stream
// (seed article, "Configure Firewall Rules").
//
// Before go-live nothing answers on xmpp.listen yet, so the probe then
// listens there itself (as net.hairpin does) and requires its own nonce to
// come back: `xgw serve` runs this suite before it takes the port.
// It requires bind.xmpp so the two never hold the port at once.
var netXMPPCheck = Check{
	ID:       "net.xmpp",
	Title:    "XMPP peers can open a stream to external_fqdn:5269",
	Requires: []string{"bind.xmpp"},
	Run:      runNetXMPP,
}

func runNetXMPP(ctx context.Context, env *Env) []Result {
	const id = "net.xmpp"
	c := env.Config
	host := c.XMPP.ExternalFQDN
	addrs, err := probeAddrs(ctx, env, host)
	if err != nil {
		return []Result{skip(id, host, "xmpp.external_fqdn "+host+" does not resolve ("+err.Error()+"); see dns.a")}
	}
	nonce, listenErr, stop := standIn(c.XMPP.Listen)
	defer stop()
	var out []Result
	for _, a := range addrs {
		target := net.JoinHostPort(a.String(), strconv.Itoa(config.XMPPServerPort))
		st, err := dialXMPPStream(ctx, env.Dialer, target, firstDomain(c))
		if err != nil {
			out = append(out, netXMPPFailure(id, target, host, err))
			continue
		}
		if listenErr == nil {
			if st.ID != nonce {
				out = append(out, fail(id, target, fmt.Sprintf("%s: an XMPP server answered (id=%q), but not this gateway: the probe listener on xmpp.listen %s never saw the connection", host, st.ID, c.XMPP.Listen),
					"the stream to "+target+" ending at this gateway ("+c.XMPP.Listen+")",
					"point the firewall's port 5269 forward (and "+host+") at xmpp.private_ip "+c.XMPP.PrivateIP))
				continue
			}
			out = append(out, pass(id, target, host+": the path ends at this gateway (xgw serve is not running: a probe listener on "+c.XMPP.Listen+" answered)"))
			continue
		}
		if st.StreamError != "" {
			out = append(out, warn(id, target, host+": "+st.summary(),
				"a stream for "+firstDomain(c)+" without a stream error",
				"the server on port 5269 refuses our domain: check that it is xgw serving sip.domains, not another XMPP server"))
			continue
		}
		out = append(out, pass(id, target, host+": "+st.summary()))
	}
	return out
}

// netXMPPFailure turns a failed stream probe into a result whose fix fits
// the way it failed.
func netXMPPFailure(id, target, host string, err error) Result {
	const expected = "an XMPP server answering with <stream:stream> (xgw serve)"
	var se *streamError
	if !errors.As(err, &se) {
		return fail(id, target, err.Error(), expected, "report this as a bug in xgw")
	}
	found := host + ": " + se.Error()
	switch se.Kind {
	case failRefused:
		return fail(id, target, found, expected,
			"nothing listens on port 5269 there: start xgw serve, or forward the firewall's port 5269 to xmpp.listen")
	case failConnectTimeout:
		return fail(id, target, found, expected,
			"the connection is dropped on the way: open and forward TCP port 5269 on the external firewall to the gateway (xmpp.listen)")
	case failUnreachable:
		return fail(id, target, found, expected,
			"no route to the address: check that external_fqdn resolves to the firewall's public address and the route to it")
	case failSilent:
		return fail(id, target, found, expected,
			"a device accepts port 5269 but does not speak XMPP: point the port forward at the gateway, not at a proxy or another host")
	case failClosed, failNotXMPP:
		return fail(id, target, found, expected,
			"another service holds port 5269 or the forward points at the wrong host: forward 5269 to xgw's xmpp.listen")
	}
	return fail(id, target, found, expected, "check the network path to "+target)
}

// firstDomain is the domain our probes name in to= (the first SIP domain).
func firstDomain(c *config.Config) string {
	if len(c.SIP.Domains) > 0 {
		return c.SIP.Domains[0]
	}
	return c.XMPP.ExternalFQDN
}

// probeAddrs resolves host through the run's resolver (the system's when
// none is set), so probes dial what the DNS checks saw.
func probeAddrs(ctx context.Context, env *Env, host string) ([]netip.Addr, error) {
	if env.Resolver != nil {
		return env.Resolver.Addrs(ctx, host)
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}
