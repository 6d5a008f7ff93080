package checks

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/xgw-gateway/xgw/internal/resolve"
)

// dnsInternalCheck: the Edge connects to the internal FQDN and validates
// the gateway's certificate against it, so that name must lead to
// xmpp.private_ip, through the perimeter DNS or the Edge's hosts file.
var dnsInternalCheck = Check{
	ID:    "dns.internal",
	Title: "The internal FQDN resolves to private_ip (DNS or the hosts file)",
	Run:   dnsProbe("dns.internal", runDNSInternal),
}

func runDNSInternal(ctx context.Context, env *Env, r *resolve.Resolver) []Result {
	const id = "dns.internal"
	v := lookInternal(ctx, env, r)
	c := env.Config
	expected := v.name + " → " + v.wantText() + ", from the perimeter DNS or " + edgeHostsFile
	record := zoneLine(c, v.name)
	switch {
	case v.dnsErr == nil && v.dnsRight() && len(v.dns) > 1:
		return []Result{warn(id, v.name, "DNS maps "+v.name+" to "+joinAddrs(v.dns)+": the Edge may pick an address that is not the gateway's",
			v.name+" → "+v.wantText()+" only", "keep only this record for "+v.name+": "+record)}
	case v.dnsRight():
		return []Result{pass(id, v.name, v.name+" → "+joinAddrs(v.dns)+" via DNS")}
	case v.dnsErr == nil:
		return []Result{fail(id, v.name, "DNS maps "+v.name+" to "+joinAddrs(v.dns)+", not the gateway"+v.hostsNote(), expected,
			"correct the record in the perimeter DNS to: "+record)}
	case v.hostsRight() && resolve.IsNotFound(v.dnsErr):
		return []Result{pass(id, v.name, fmt.Sprintf("%s → %s via hosts file %s line %d (DNS has no record: %v)",
			v.name, v.hosts[0].Addr, v.hostsPath, v.hosts[0].Line, v.dnsErr))}
	case v.hostsRight():
		return []Result{warn(id, v.name, fmt.Sprintf("%s → %s via hosts file %s line %d, but DNS gave no answer: %v",
			v.name, v.hosts[0].Addr, v.hostsPath, v.hosts[0].Line, v.dnsErr), expected+", and a DNS server that answers",
			unanswered(id, v.name, v.dnsErr, "").Fix)}
	case !resolve.IsNotFound(v.dnsErr):
		res := unanswered(id, v.name, v.dnsErr, expected)
		res.Found += v.hostsNote()
		return []Result{res}
	}
	return []Result{fail(id, v.name, "no DNS record ("+v.dnsErr.Error()+")"+v.hostsNote(), expected,
		"add to the perimeter DNS: "+record+"; with no DNS server in the perimeter, add \""+v.hostsLine()+"\" to "+edgeHostsFile)}
}

// internalView is everything the Edge can learn about the internal FQDN:
// the DNS answer and the hosts file's entries. dns.internal and hosts.entry
// judge the same view from their two sides.
type internalView struct {
	name string
	want netip.Addr // xmpp.private_ip; invalid when unset
	// wantSet is false when xmpp.private_ip is unset: any address will do.
	wantSet bool

	dns    []netip.Addr
	dnsErr error

	hostsPath string
	hosts     []hostsEntry // the entries naming name, in file order
	hostsErr  error        // the file could not be read or parsed
}

func lookInternal(ctx context.Context, env *Env, r *resolve.Resolver) internalView {
	c := env.Config
	// A relative hosts_file is relative to the config file, like every path in it.
	v := internalView{name: c.XMPP.InternalFQDN, hostsPath: c.Path(c.Checks.HostsFile)}
	v.want, v.wantSet = configAddr(c.XMPP.PrivateIP)
	v.dns, v.dnsErr = r.Addrs(ctx, v.name)
	var all []hostsEntry
	all, v.hostsErr = readHosts(env, v.hostsPath)
	v.hosts = hostsLookup(all, v.name)
	return v
}

// dnsRight reports whether DNS maps the name to the wanted address.
func (v *internalView) dnsRight() bool {
	return v.dnsErr == nil && (!v.wantSet || containsAddr(v.dns, v.want))
}

// hostsRight reports whether the hosts file's first entry for the name
// (the one resolvers use) is the wanted address.
func (v *internalView) hostsRight() bool {
	return len(v.hosts) > 0 && (!v.wantSet || v.hosts[0].Addr == v.want)
}

// hostsLine is the line the Edge's hosts file needs.
func (v *internalView) hostsLine() string {
	addr := "<xmpp.private_ip>"
	if v.wantSet {
		addr = v.want.String()
	}
	return addr + " " + v.name
}

func (v *internalView) wantText() string {
	if v.wantSet {
		return v.want.String() + " (xmpp.private_ip)"
	}
	return "an address (xmpp.private_ip is unset)"
}

// hostsNote tells what the hosts file says, for a DNS finding.
func (v *internalView) hostsNote() string {
	switch {
	case v.hostsErr != nil:
		return "; " + v.hostsErr.Error()
	case len(v.hosts) == 0:
		return "; " + v.hostsPath + " has no entry for it"
	}
	return fmt.Sprintf("; %s line %d maps it to %s", v.hostsPath, v.hosts[0].Line, v.hosts[0].Addr)
}

// edgeHostsFile says where the entry belongs: the Edge resolves the
// internal FQDN, not the gateway (seed article, "Configure the Edge Server").
const edgeHostsFile = `the Edge server's hosts file (Windows: %windir%\system32\drivers\etc\hosts, edited as administrator)`
