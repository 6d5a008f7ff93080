package checks

// Lookups and wording shared by the DNS and hosts-file probes (dns.srv,
// dns.a, dns.internal, hosts.entry).

import (
	"bufio"
	"context"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/resolve"
)

// dnsProbe wraps the Run of a DNS probe: the lookups get a deadline even
// when the caller set none (`xgw check` sets one; a library caller may not:
// checks.timeout applies), and env.Resolver, or the one checks.dns_server
// (or resolv.conf) names when the Env carries none.
func dnsProbe(id string, run func(ctx context.Context, env *Env, r *resolve.Resolver) []Result) func(context.Context, *Env) []Result {
	return func(ctx context.Context, env *Env) []Result {
		if _, ok := ctx.Deadline(); !ok {
			t := time.Duration(env.Config.Checks.Timeout)
			if t <= 0 {
				t = time.Duration(config.DefaultTimeout)
			}
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, t)
			defer cancel()
		}
		r := env.Resolver
		if r == nil {
			var err error
			if r, err = resolve.New(env.Config.Checks.DNSServer); err != nil {
				return []Result{fail(id, "", "no DNS resolver: "+err.Error(), "a DNS server to ask",
					"set checks.dns_server (or --dns-server HOST:PORT), or fix /etc/resolv.conf")}
			}
		}
		return run(ctx, env, r)
	}
}

// unanswered is the result of a lookup that got no usable answer: a timeout,
// a refused connection or an error rcode. It names the server asked, because
// "DNS failed" is the kind of message nobody can act on.
func unanswered(id, target string, err error, expected string) Result {
	server := "the DNS server"
	var e *resolve.Error
	if errors.As(err, &e) && e.Server != "" {
		server = e.Server
	}
	fix := "make sure " + server + " is reachable from this host on UDP and TCP port 53 (or the port given), pass --dns-server HOST:PORT to ask another server, or raise --timeout"
	if e != nil && e.Err == nil {
		fix = server + " answered with an error: make sure it serves (or recursively resolves) this zone, or pass --dns-server HOST:PORT"
	}
	return fail(id, target, err.Error(), expected, fix)
}

// zoneLine returns the record for owner from what `xgw dns` prints (a
// placeholder left commented out there is returned uncommented), so every
// fix names the exact text the admin can paste into the zone.
func zoneLine(c *config.Config, owner string) string {
	owner = strings.TrimSuffix(owner, ".") + "."
	sc := bufio.NewScanner(strings.NewReader(config.ZoneRecords(c)))
	for sc.Scan() {
		line := strings.TrimPrefix(sc.Text(), "; ")
		if f := strings.Fields(line); len(f) > 0 && strings.EqualFold(f[0], owner) {
			return line
		}
	}
	return ""
}

// sameFQDN compares host names as DNS does: case-insensitive, with or
// without the final dot.
func sameFQDN(a, b string) bool {
	return strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// configAddr parses an address from the config (validated by config.Load);
// ok is false when the key is unset.
func configAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err == nil
}

// addrKind names why an address is unreachable from the Internet.
func addrKind(a netip.Addr) string {
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsMulticast():
		return "multicast"
	}
	return "non-routable (documentation or shared)"
}

func containsAddr(addrs []netip.Addr, a netip.Addr) bool {
	for _, x := range addrs {
		if x.Unmap() == a {
			return true
		}
	}
	return false
}
