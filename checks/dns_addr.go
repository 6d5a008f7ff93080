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
	Run:   dnsProbe("dns.a", runDNSA),
}

func runDNSA(ctx context.Context, env *Env, r *resolve.Resolver) []Result {
	const id = "dns.a"
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
	// Every extra address gets its share of the peers: one unreachable from
	// the Internet, or another host in public_ip's family, loses them. The
	// configured public_ip is exempt: a lab sets it to loopback on purpose.
	// An address of the other family may be the gateway's too (public_ip
	// holds one address), so it is only shown.
	var stray []string
	for _, a := range addrs {
		switch {
		case a.Unmap() == public:
		case !isPublic(a):
			stray = append(stray, a.String()+" is "+addrKind(a)+", unreachable for peers on the Internet")
		case hasPublic && a.Is4() == public.Is4():
			stray = append(stray, a.String()+" is not xmpp.public_ip, yet peers pick it as often")
		}
	}
	found := name + " → " + joinAddrs(addrs)
	if len(stray) > 0 {
		want, keep := "only addresses reachable from the Internet", ""
		if hasPublic {
			want, keep = expected+", and no address that peers would try in vain", " and keep "+record
		}
		return []Result{warn(id, name, found+"; "+strings.Join(stray, "; "), want,
			"remove those addresses' records from the public zone"+keep+"; an inside address belongs to the internal FQDN "+c.XMPP.InternalFQDN+" in the perimeter DNS")}
	}
	if hasPublic && !isPublic(public) {
		found += " (xmpp.public_ip is itself " + addrKind(public) + ": fine for a lab, unreachable for peers on the Internet)"
	}
	return []Result{pass(id, name, found)}
}
