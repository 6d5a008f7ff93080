package checks

import (
	"context"
	"strings"

	"github.com/xgw-gateway/xgw/internal/resolve"
)

// dnsACheck covers the A record of the seed article's step 6: the external
// FQDN that SRV points at must lead peers to the firewall's public address,
// which forwards port 5269 to the gateway.
var dnsACheck = Check{
	ID:    "dns.a",
	Title: "The external FQDN has A/AAAA records equal to public_ip",
	Run:   runDNSA,
}

func runDNSA(ctx context.Context, env *Env) []Result {
	const id = "dns.a"
	ctx, cancel := probeContext(ctx, env)
	defer cancel()
	r, err := resolverOf(env)
	if err != nil {
		return noResolver(id, err)
	}
	c := env.Config
	name := c.XMPP.ExternalFQDN
	public, hasPublic := configAddr(c.XMPP.PublicIP)
	record := zoneLine(c, name)
	expected := "an A or AAAA record for " + name + " (xmpp.public_ip is unset)"
	if hasPublic {
		expected = name + " → " + public.String() + " (xmpp.public_ip)"
	}
	addrs, err := r.Addrs(ctx, name)
	switch {
	case resolve.IsNotFound(err):
		return []Result{fail(id, name, "no A or AAAA record ("+err.Error()+")", expected,
			"add to the public DNS zone: "+record)}
	case err != nil:
		return []Result{unanswered(id, name, err, expected)}
	case hasPublic && !containsAddr(addrs, public):
		return []Result{fail(id, name, name+" → "+joinAddrs(addrs), expected,
			"point "+name+" at the firewall's public address, which forwards port 5269 to xgw: "+record)}
	}
	// Addresses peers on the Internet cannot reach. The configured public_ip
	// is exempt: a lab sets it to a loopback or private address on purpose.
	var unreachable []string
	for _, a := range addrs {
		if a.Unmap() != public && !isPublic(a) {
			unreachable = append(unreachable, a.String()+" is "+addrKind(a))
		}
	}
	found := name + " → " + joinAddrs(addrs)
	if len(unreachable) > 0 {
		return []Result{warn(id, name, found+"; "+strings.Join(unreachable, ", ")+", which peers on the Internet cannot reach",
			"only addresses reachable from the Internet in the public zone",
			"remove those records from the public zone; the gateway's inside address belongs to the internal FQDN "+c.XMPP.InternalFQDN)}
	}
	if hasPublic && !isPublic(public) {
		found += " (xmpp.public_ip is itself " + addrKind(public) + ": fine for a lab, unreachable for peers on the Internet)"
	}
	return []Result{pass(id, name, found)}
}
