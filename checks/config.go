package checks

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// configCheck runs after config.Load accepted the file: it looks for values
// that are each valid but do not fit together.
var configCheck = Check{
	ID:    "config",
	Title: "Configuration is consistent",
	Run:   runConfig,
}

func runConfig(_ context.Context, env *Env) []Result {
	c := env.Config
	const id = "config"
	var out []Result
	if strings.EqualFold(c.XMPP.InternalFQDN, c.XMPP.ExternalFQDN) {
		out = append(out, warn(id, "xmpp.internal_fqdn",
			fmt.Sprintf("internal_fqdn and external_fqdn are both %s", c.XMPP.InternalFQDN),
			"two names: an internal one for the Edge, an external one for XMPP peers",
			"with one public name the Edge reaches the gateway through the external firewall, which must then allow loopback (see net.hairpin); add an internal name that maps to private_ip"))
	}
	if ap, err := netip.ParseAddrPort(c.XMPP.Listen); err == nil && c.XMPP.PrivateIP != "" && !ap.Addr().IsUnspecified() && ap.Addr().String() != c.XMPP.PrivateIP {
		out = append(out, warn(id, "xmpp.listen",
			fmt.Sprintf("xmpp.listen is %s but private_ip is %s", ap.Addr(), c.XMPP.PrivateIP),
			"the gateway listening on private_ip, where the firewall forwards port 5269",
			"set xmpp.listen to "+c.XMPP.PrivateIP+":5269"))
	}
	if strings.EqualFold(c.SIP.Edge.Host, c.XMPP.ExternalFQDN) || strings.EqualFold(c.SIP.Edge.Host, c.XMPP.InternalFQDN) {
		out = append(out, fail(id, "sip.edge.host",
			"sip.edge.host is the gateway's own name "+c.SIP.Edge.Host,
			"the Edge server's FQDN",
			"set sip.edge.host to the Edge's internal FQDN"))
	}
	if c.SIP.Edge.Transport != "tls" {
		out = append(out, warn(id, "sip.edge.transport",
			"transport "+c.SIP.Edge.Transport,
			"tls (an OCS/Lync/SfB Edge only speaks mutual TLS)",
			"use transport: tls outside a lab"))
	}
	if len(c.XMPP.Federation) == 0 && !c.XMPP.Open {
		out = append(out, warn(id, "xmpp.federation",
			"an empty allow list and open: false",
			"at least one federated XMPP domain",
			"add xmpp.federation: [{domain: example.org, auth: dialback}] or set open: true"))
	}
	if len(out) == 0 {
		out = append(out, pass(id, "", fmt.Sprintf("%d SIP domain(s), %d federation partner(s), Edge %s:%d/%s",
			len(c.SIP.Domains), len(c.XMPP.Federation), c.SIP.Edge.Host, c.SIP.Edge.Port, c.SIP.Edge.Transport)))
	}
	return out
}

// isPublic reports whether a is routable on the Internet.
func isPublic(a netip.Addr) bool {
	if a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified() || a.IsMulticast() {
		return false
	}
	for _, p := range documentationNets {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// documentationNets are RFC 5737/3849 ranges and shared address space
// (RFC 6598): not reachable from the Internet.
var documentationNets = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("2001:db8::/32"),
}
