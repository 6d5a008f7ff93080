package checks

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/resolve"
)

// dnsSRVCheck covers the seed article's step 6 and its comments: XMPP peers
// find the gateway through _xmpp-server._tcp.<SIP domain>, so every SIP
// domain needs its own record, on port 5269, pointing at the external FQDN.
var dnsSRVCheck = Check{
	ID:    "dns.srv",
	Title: "Each SIP domain has an _xmpp-server._tcp SRV record to the external FQDN, port 5269",
	Run:   dnsProbe("dns.srv", runDNSSRV),
}

// srvAnswer is one SRV lookup's outcome.
type srvAnswer struct {
	recs []*net.SRV
	err  error
}

func lookupSRV(ctx context.Context, r *resolve.Resolver, service, domain string) srvAnswer {
	recs, err := r.SRV(ctx, service, "tcp", domain)
	return srvAnswer{recs: recs, err: err}
}

func runDNSSRV(ctx context.Context, env *Env, r *resolve.Resolver) []Result {
	const id = "dns.srv"
	c := env.Config
	// Both services of every domain at once: a slow server then costs one
	// timeout, not one per lookup.
	starttls := make([]srvAnswer, len(c.SIP.Domains))
	direct := make([]srvAnswer, len(c.SIP.Domains))
	var wg sync.WaitGroup
	for i, d := range c.SIP.Domains {
		wg.Go(func() { starttls[i] = lookupSRV(ctx, r, "xmpp-server", d) })
		wg.Go(func() { direct[i] = lookupSRV(ctx, r, "xmpps-server", d) })
	}
	wg.Wait()

	var misplaced []string // looked up only when some domain lacks its record
	for _, a := range starttls {
		if resolve.IsNotFound(a.err) {
			misplaced = misplacedSRV(ctx, r, c)
			break
		}
	}
	out := make([]Result, len(c.SIP.Domains))
	for i, d := range c.SIP.Domains {
		res := judgeSRV(c, d, starttls[i])
		if resolve.IsNotFound(starttls[i].err) {
			res.Found += missingHint(c, d, starttls, misplaced)
		}
		out[i] = checkDirectTLS(res, d, direct[i])
	}
	return out
}

// judgeSRV grades the _xmpp-server._tcp answer of one SIP domain.
func judgeSRV(c *config.Config, domain string, a srvAnswer) Result {
	const id = "dns.srv"
	owner := "_xmpp-server._tcp." + domain
	ext := strings.TrimSuffix(c.XMPP.ExternalFQDN, ".") + "."
	line := zoneLine(c, owner)
	expected := fmt.Sprintf("an SRV record %s to %s port %d", owner, ext, config.XMPPServerPort)
	replace := "replace the record(s) at " + owner + " with: " + line
	if a.err != nil {
		if resolve.IsNotFound(a.err) {
			return fail(id, domain, "no SRV record ("+a.err.Error()+")", expected,
				"add to the public DNS zone of "+domain+": "+line)
		}
		return unanswered(id, domain, a.err, expected)
	}
	recs := sortedSRV(a.recs)
	found := "SRV " + formatSRV(recs)
	if resolve.NotOffered(recs) {
		return fail(id, domain, found+`: a lone "." target says the service is explicitly not offered at `+domain+" (RFC 6120 §3.2.1), so peers will not even try",
			expected, replace)
	}
	for _, s := range recs {
		if sameFQDN(s.Target, "localhost") {
			return fail(id, domain, found+": target localhost makes every peer connect to itself", expected, replace)
		}
	}
	var ours, best []*net.SRV
	for _, s := range recs {
		if sameFQDN(s.Target, ext) {
			ours = append(ours, s)
		}
		if s.Priority == recs[0].Priority {
			best = append(best, s)
		}
	}
	if len(ours) == 0 {
		return fail(id, domain, found+targetHint(c, domain, recs), expected, replace)
	}
	for _, s := range ours {
		if s.Port != config.XMPPServerPort {
			return fail(id, domain, fmt.Sprintf("%s: port %d%s", found, s.Port, portHint(s.Port)), expected,
				fmt.Sprintf("set the port to %d (the firewall forwards it to xgw): %s", config.XMPPServerPort, line))
		}
	}
	ourBest := 0
	for _, s := range best {
		if sameFQDN(s.Target, ext) {
			ourBest++
		}
	}
	switch {
	case ourBest == 0:
		return warn(id, domain, fmt.Sprintf("%s: %s is only a backup (priority %d); peers try %s first (priority %d)",
			found, ext, ours[0].Priority, best[0].Target, best[0].Priority),
			expected+" at the lowest priority value",
			"give "+ext+" the lowest priority value, e.g. "+line+", or remove the other records if those hosts do not serve "+domain)
	case ourBest < len(best):
		return warn(id, domain, fmt.Sprintf("%s: %s shares priority %d with other targets and gets about %d%% of the peers",
			found, ext, best[0].Priority, share(best, ext)),
			expected+" alone at the lowest priority value",
			"if the other targets are not XMPP servers for "+domain+", remove them; otherwise give them a higher priority value than "+ext)
	}
	return pass(id, domain, found)
}

// share is the percentage of connections RFC 2782's weighted choice sends
// to target among records of one priority.
func share(best []*net.SRV, target string) int {
	total, ours, n := 0, 0, 0
	for _, s := range best {
		total += int(s.Weight)
		if sameFQDN(s.Target, target) {
			ours += int(s.Weight)
			n++
		}
	}
	if total == 0 {
		return 100 * n / len(best)
	}
	return 100 * ours / total
}

// sortedSRV orders records by priority then weight (heaviest first) so
// messages do not depend on the resolver's random shuffle.
func sortedSRV(recs []*net.SRV) []*net.SRV {
	recs = slices.Clone(recs)
	slices.SortStableFunc(recs, func(a, b *net.SRV) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(b.Weight, a.Weight),
			cmp.Compare(strings.ToLower(a.Target), strings.ToLower(b.Target)), cmp.Compare(a.Port, b.Port))
	})
	return recs
}

// formatSRV writes records as zone-file rdata: "0 5 5269 xmpp.example.com.".
func formatSRV(recs []*net.SRV) string {
	s := make([]string, len(recs))
	for i, r := range recs {
		s[i] = fmt.Sprintf("%d %d %d %s", r.Priority, r.Weight, r.Port, r.Target)
	}
	return strings.Join(s, "; ")
}

// targetHint explains the common wrong targets.
func targetHint(c *config.Config, domain string, recs []*net.SRV) string {
	for _, s := range recs {
		switch {
		case sameFQDN(s.Target, c.XMPP.InternalFQDN):
			return ": it points at the internal FQDN " + c.XMPP.InternalFQDN + ", which peers on the Internet cannot reach; use the external FQDN " + c.XMPP.ExternalFQDN
		case sameFQDN(s.Target, domain):
			return ": it points at the SIP domain itself, not at the gateway's external FQDN " + c.XMPP.ExternalFQDN
		}
	}
	return ": no record points at the gateway's external FQDN " + c.XMPP.ExternalFQDN
}

func portHint(port uint16) string {
	switch port {
	case 5222:
		return " (5222 is the XMPP client port; servers federate on 5269)"
	case 5270:
		return " (5270 is the direct-TLS port of XEP-0368; it belongs in _xmpps-server._tcp, and xgw speaks STARTTLS on 5269)"
	case 5061:
		return " (5061 is the Edge's SIP port, not XMPP)"
	}
	return ""
}

// misplacedSRV looks for the seed's classic mistake: an SRV record made for
// the gateway's own domain (the domain part of its FQDNs) instead of the SIP
// domain. It returns the owners found that are not SIP domains.
func misplacedSRV(ctx context.Context, r *resolve.Resolver, c *config.Config) []string {
	var owners, asked []string
	for _, fqdn := range []string{c.XMPP.ExternalFQDN, c.XMPP.InternalFQDN} {
		_, parent, ok := strings.Cut(strings.TrimSuffix(fqdn, "."), ".")
		isSIP := slices.ContainsFunc(c.SIP.Domains, func(d string) bool { return sameFQDN(d, parent) })
		if !ok || !strings.Contains(parent, ".") || isSIP || slices.Contains(asked, parent) {
			continue
		}
		asked = append(asked, parent)
		if a := lookupSRV(ctx, r, "xmpp-server", parent); a.err == nil {
			owners = append(owners, parent)
		}
	}
	return owners
}

// missingHint tells why a domain lacks its record when the zone shows the
// cause: the record was made for the server's domain, or only for another
// SIP domain (the seed's comment of October 19).
func missingHint(c *config.Config, domain string, all []srvAnswer, misplaced []string) string {
	var hints []string
	for _, p := range misplaced {
		hints = append(hints, "_xmpp-server._tcp."+p+" exists, but that is the gateway's own domain; peers look up the domain after the @ of the SIP address, "+domain)
	}
	var siblings []string
	for i, d := range c.SIP.Domains {
		if d != domain && all[i].err == nil && !resolve.NotOffered(all[i].recs) {
			siblings = append(siblings, d)
		}
	}
	switch len(siblings) {
	case 0:
	case 1:
		hints = append(hints, siblings[0]+" has its record but every SIP domain needs its own")
	default:
		hints = append(hints, strings.Join(siblings, ", ")+" have theirs but every SIP domain needs its own")
	}
	if len(hints) == 0 {
		return ""
	}
	return "; " + strings.Join(hints, "; ")
}

// checkDirectTLS adds the XEP-0368 finding: an _xmpps-server._tcp record is
// for direct TLS and must not point at 5269, where xgw expects STARTTLS.
// The record is optional, so a failed lookup of it changes nothing.
func checkDirectTLS(res Result, domain string, a srvAnswer) Result {
	if a.err != nil || resolve.NotOffered(a.recs) {
		return res
	}
	var bad []*net.SRV
	for _, s := range a.recs {
		if s.Port == config.XMPPServerPort {
			bad = append(bad, s)
		}
	}
	if len(bad) == 0 {
		return res
	}
	found := fmt.Sprintf("_xmpps-server._tcp.%s SRV %s points at port %d, the STARTTLS port: peers that prefer it open TLS directly and the stream fails",
		domain, formatSRV(sortedSRV(bad)), config.XMPPServerPort)
	fix := "remove the _xmpps-server._tcp." + domain + " record (xgw speaks STARTTLS on 5269), or point it at a port that speaks direct TLS"
	if res.Status != Pass {
		res.Found += "; also " + found
		res.Fix += "; also " + fix
		return res
	}
	return warn(res.ID, domain, res.Found+"; but "+found,
		"no _xmpps-server._tcp record, or one on a direct-TLS port (XEP-0368)", fix)
}
