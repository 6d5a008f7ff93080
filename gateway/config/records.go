package config

import (
	"fmt"
	"strings"
)

// ZoneRecords renders the DNS records this configuration needs, in zone-file
// syntax: what `xgw dns` prints and what the dns.* checks expect.
func ZoneRecords(c *Config) string {
	var b strings.Builder
	ext := strings.TrimSuffix(c.XMPP.ExternalFQDN, ".") + "."
	b.WriteString("; Public DNS: one SRV record per SIP domain (XMPP peers look these up)\n")
	for _, d := range c.SIP.Domains {
		fmt.Fprintf(&b, "_xmpp-server._tcp.%s.\t3600\tIN\tSRV\t0 5 %d %s\n", strings.TrimSuffix(d, "."), XMPPServerPort, ext)
	}
	b.WriteString("\n; Public DNS: the external FQDN points at the firewall's public address\n")
	if c.XMPP.PublicIP != "" {
		fmt.Fprintf(&b, "%s\t3600\tIN\t%s\t%s\n", ext, addrType(c.XMPP.PublicIP), c.XMPP.PublicIP)
	} else {
		fmt.Fprintf(&b, "; %s\t3600\tIN\tA\t<public address> (set xmpp.public_ip)\n", ext)
	}
	b.WriteString("\n; Perimeter DNS (or the Edge's hosts file): the internal FQDN points at the gateway\n")
	if c.XMPP.PrivateIP != "" {
		fmt.Fprintf(&b, "%s.\t3600\tIN\t%s\t%s\n", strings.TrimSuffix(c.XMPP.InternalFQDN, "."), addrType(c.XMPP.PrivateIP), c.XMPP.PrivateIP)
		fmt.Fprintf(&b, "; hosts-file line for the Edge: %s %s\n", c.XMPP.PrivateIP, c.XMPP.InternalFQDN)
	} else {
		fmt.Fprintf(&b, "; %s.\t3600\tIN\tA\t<private address> (set xmpp.private_ip)\n", c.XMPP.InternalFQDN)
	}
	return b.String()
}

func addrType(ip string) string {
	if strings.Contains(ip, ":") {
		return "AAAA"
	}
	return "A"
}
