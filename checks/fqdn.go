package checks

import (
	"context"
	"fmt"
	"strings"
)

// fqdnCheck covers the seed article's steps 3 and 4: two well-formed names,
// and the host's DNS suffix equal to the internal FQDN's domain part.
var fqdnCheck = Check{
	ID:    "fqdn",
	Title: "Gateway FQDNs are valid and match the host's DNS suffix",
	Run:   runFQDN,
}

func runFQDN(_ context.Context, env *Env) []Result {
	c := env.Config
	const id = "fqdn"
	var out []Result
	for _, n := range []struct{ key, name string }{
		{"xmpp.internal_fqdn", c.XMPP.InternalFQDN},
		{"xmpp.external_fqdn", c.XMPP.ExternalFQDN},
	} {
		switch {
		case strings.Contains(n.name, "_"):
			out = append(out, warn(id, n.name, n.key+" contains '_'",
				"a host name of letters, digits and '-' (RFC 952/1123)",
				"DNS stores it, but certificate requests, some CAs and TLS stacks refuse '_' in host names; rename it, e.g. "+strings.ReplaceAll(n.name, "_", "-")))
		case !strings.Contains(strings.TrimSuffix(n.name, "."), "."):
			out = append(out, fail(id, n.name, n.key+" is a single label",
				"a fully qualified name such as xmpp.example.com",
				"write the full name including the domain"))
		default:
			out = append(out, pass(id, n.name, n.key+" is a valid host name"))
		}
	}
	out = append(out, suffixResult(env, id))
	return out
}

// suffixResult compares the host's own FQDN with the internal FQDN's domain:
// a workgroup server without the right primary DNS suffix presents the wrong
// name to the Edge (seed article, step 4).
func suffixResult(env *Env, id string) Result {
	internal := env.Config.XMPP.InternalFQDN
	_, want, _ := strings.Cut(internal, ".")
	host, err := env.Hostname()
	if err != nil {
		return warn(id, "dns-suffix", "the host name could not be read: "+err.Error(), "the host's FQDN", "check hostname(1)")
	}
	_, suffix, ok := strings.Cut(host, ".")
	if !ok {
		return pass(id, "dns-suffix", fmt.Sprintf("host name %q carries no DNS suffix; the certificate and DNS define the gateway's names", host))
	}
	if !strings.EqualFold(strings.TrimSuffix(suffix, "."), want) {
		return warn(id, "dns-suffix", fmt.Sprintf("host %s has DNS suffix %s", host, suffix),
			"DNS suffix "+want+" (the domain part of xmpp.internal_fqdn "+internal+")",
			"set the primary DNS suffix to "+want+" (Windows: System > Computer name > More; Linux: hostnamectl set-hostname "+internal+")")
	}
	return pass(id, "dns-suffix", "host "+host+" has DNS suffix "+suffix)
}
