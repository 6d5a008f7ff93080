package config

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Validate checks the values that decoded well: required keys, addresses,
// host names and enumerations.
func (c *Config) Validate() Errors {
	v := validator{c: c}
	v.required("sip.domains", len(c.SIP.Domains) > 0, "every SIP domain the gateway answers for", "add sip.domains: [example.com]")
	seen := map[string]bool{}
	for i, d := range c.SIP.Domains {
		key := fmt.Sprintf("sip.domains[%d]", i)
		v.hostname(key, d, "a SIP domain name such as litware.com")
		if seen[strings.ToLower(d)] {
			v.add(key, strconv.Quote(d)+" a second time", "each domain once", "remove the duplicate")
		}
		seen[strings.ToLower(d)] = true
	}
	v.hostPort("sip.listen", c.SIP.Listen, "5061", true)
	v.hostname("sip.edge.host", c.SIP.Edge.Host, "the Edge server's FQDN (or IP address)")
	if c.SIP.Edge.Port < 1 || c.SIP.Edge.Port > 65535 {
		v.add("sip.edge.port", strconv.Itoa(c.SIP.Edge.Port), "a port from 1 to 65535", "the Edge's MTLS port is usually 5061")
	}
	switch c.SIP.Edge.Transport {
	case "tls", "tcp", "udp":
	default:
		v.add("sip.edge.transport", strconv.Quote(c.SIP.Edge.Transport), "tls, tcp or udp", "use tls; tcp and udp are for labs only")
	}

	v.hostPort("xmpp.listen", c.XMPP.Listen, "5269", true)
	v.hostname("xmpp.internal_fqdn", c.XMPP.InternalFQDN, "the FQDN the Edge uses to reach the gateway")
	v.hostname("xmpp.external_fqdn", c.XMPP.ExternalFQDN, "the FQDN XMPP peers find through SRV")
	v.ip("xmpp.public_ip", c.XMPP.PublicIP)
	v.ip("xmpp.private_ip", c.XMPP.PrivateIP)
	partners := map[string]bool{}
	for i, p := range c.XMPP.Federation {
		key := fmt.Sprintf("xmpp.federation[%d]", i)
		v.hostname(key+".domain", p.Domain, "a federated XMPP domain such as gmail.com")
		switch p.Auth {
		case AuthDialback, AuthTLS, AuthTLSDialback:
		default:
			v.add(key+".auth", strconv.Quote(p.Auth), "dialback, tls or tls+dialback", "use dialback for servers without usable certificates")
		}
		if partners[strings.ToLower(p.Domain)] {
			v.add(key+".domain", strconv.Quote(p.Domain)+" a second time", "each partner once", "remove the duplicate entry")
		}
		partners[strings.ToLower(p.Domain)] = true
		if c.ServesDomain(p.Domain) {
			v.add(key+".domain", strconv.Quote(p.Domain), "a remote XMPP domain, not one of sip.domains", "remove it from xmpp.federation")
		}
	}
	for i, d := range c.XMPP.Deny {
		v.hostname(fmt.Sprintf("xmpp.deny[%d]", i), d, "a domain to refuse")
	}
	// RFC 6120 §13.12 lets no server refuse stanzas under 10000 bytes; above
	// 256 KiB the translation layer refuses payloads anyway.
	if c.XMPP.MaxStanzaSize < MinMaxStanzaSize || c.XMPP.MaxStanzaSize > DefaultMaxStanzaSize {
		v.add("xmpp.max_stanza_size", strconv.Itoa(c.XMPP.MaxStanzaSize),
			fmt.Sprintf("from %d (RFC 6120 §13.12) to %d bytes", MinMaxStanzaSize, DefaultMaxStanzaSize),
			"leave it out for the default 262144")
	}

	v.required("tls.cert", c.TLS.Cert != "", "the PEM certificate whose CN is xmpp.internal_fqdn", "add tls.cert: /etc/xgw/cert.pem")
	v.required("tls.key", c.TLS.Key != "", "the PEM private key of tls.cert", "add tls.key: /etc/xgw/key.pem")
	if c.SIP.Edge.Transport == "tls" {
		v.required("tls.ca", c.TLS.CA != "", "the CA that issued the Edge's certificate (mutual TLS)", "add tls.ca: /etc/xgw/edge-ca.pem")
	}
	certDomains := map[string]bool{}
	for i, d := range c.TLS.Domains {
		key := fmt.Sprintf("tls.domains[%d]", i)
		switch {
		case d.Domain == "":
			v.add(key+".domain", "nothing (the key is missing)", "one of sip.domains", "add domain: <a SIP domain>")
		case !slices.ContainsFunc(c.SIP.Domains, func(s string) bool { return strings.EqualFold(s, d.Domain) }):
			v.add(key+".domain", strconv.Quote(d.Domain), "one of sip.domains "+strings.Join(c.SIP.Domains, ", "), "name a served SIP domain, or add it to sip.domains")
		case certDomains[strings.ToLower(d.Domain)]:
			v.add(key+".domain", strconv.Quote(d.Domain)+" a second time", "one certificate per domain", "remove the duplicate entry")
		}
		certDomains[strings.ToLower(d.Domain)] = true
		v.required(key+".cert", d.Cert != "", "the PEM certificate for "+d.Domain, "add cert: "+d.Domain+".pem")
		v.required(key+".key", d.Key != "", "the PEM private key of that certificate", "add key: "+d.Domain+".key")
	}
	if c.Checks.DNSServer != "" {
		v.dnsServer("checks.dns_server", c.Checks.DNSServer)
	}
	v.admin()
	v.trace()
	switch strings.ToLower(c.Log.Level) {
	case "", "debug", "info", "warn", "error":
	default:
		v.add("log.level", strconv.Quote(c.Log.Level), "debug, info, warn or error", "leave it out to keep --log-level")
	}
	return v.errs
}

// admin checks the admin listener: an address, a token when it is reachable
// from other hosts (metrics name partners and users' domains), and a check
// interval that does not hammer the Edge and DNS.
func (v *validator) admin() {
	a := v.c.Admin
	v.hostPort("admin.listen", a.Listen, "9269", true)
	if host, _, err := net.SplitHostPort(a.Listen); err == nil && a.Token == "" && !loopback(host) {
		v.add("admin.listen", strconv.Quote(a.Listen)+" (not a loopback address) without admin.token",
			"a loopback address such as "+DefaultAdminListen+", or a token",
			"keep the default "+DefaultAdminListen+" and scrape through a local agent, or set admin.token")
	}
	if a.CheckInterval < MinCheckInterval {
		v.add("admin.check_interval", time.Duration(a.CheckInterval).String(), "at least "+time.Duration(MinCheckInterval).String(),
			"leave it out for the default "+time.Duration(DefaultCheckInterval).String())
	}
}

// trace checks the protocol trace section.
func (v *validator) trace() {
	tr := v.c.Trace
	seen := map[string]bool{}
	for i, p := range tr.Protocols {
		key := fmt.Sprintf("trace.protocols[%d]", i)
		switch strings.ToLower(p) {
		case "sip", "xmpp", "dns":
		default:
			v.add(key, strconv.Quote(p), "sip, xmpp or dns", "list the protocols to trace, e.g. protocols: [sip, xmpp]")
		}
		if seen[strings.ToLower(p)] {
			v.add(key, strconv.Quote(p)+" a second time", "each protocol once", "remove the duplicate")
		}
		seen[strings.ToLower(p)] = true
	}
	if tr.MaxSizeMB < 1 || tr.MaxSizeMB > 100<<10 {
		v.add("trace.max_size_mb", strconv.Itoa(tr.MaxSizeMB), "1 to 102400 (MB per file)", "leave it out for the default "+strconv.Itoa(DefaultTraceMaxSize))
	}
	if tr.MaxFiles < 1 || tr.MaxFiles > 1000 {
		v.add("trace.max_files", strconv.Itoa(tr.MaxFiles), "1 to 1000 (files kept, the current one included)", "leave it out for the default "+strconv.Itoa(DefaultTraceMaxFiles))
	}
	if strings.HasSuffix(tr.File, "/") {
		v.add("trace.file", strconv.Quote(tr.File), "a file name, not a directory", "use e.g. "+DefaultTraceFile)
	}
}

// loopback reports whether host is a loopback IP or "localhost".
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Path resolves a file name from the config relative to the config's folder.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.File == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.File), p)
}

type validator struct {
	c    *Config
	errs Errors
}

func (v *validator) add(key, found, expected, fix string) {
	v.errs = append(v.errs, &Error{File: v.c.File, Line: v.c.Line(key), Key: key, Found: found, Expected: expected, Fix: fix})
}

func (v *validator) required(key string, ok bool, expected, fix string) {
	if !ok {
		v.add(key, "nothing (the key is missing)", expected, fix)
	}
}

func (v *validator) hostname(key, s, expected string) {
	if s == "" {
		v.add(key, "nothing (the key is missing)", expected, "set "+key)
		return
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return
	}
	if why := HostnameProblem(s); why != "" {
		v.add(key, strconv.Quote(s)+" ("+why+")", expected, "use letters, digits, '-' and '.' only, in labels of at most 63 characters")
	}
}

func (v *validator) ip(key, s string) {
	if s == "" {
		return
	}
	if _, err := netip.ParseAddr(s); err != nil {
		v.add(key, strconv.Quote(s), "an IPv4 or IPv6 address", "write the address without a port, e.g. 203.0.113.32")
	}
}

// hostPort checks HOST:PORT; defPort is the port the key usually has, for
// the examples in the fix.
func (v *validator) hostPort(key, s, defPort string, wildcardOK bool) {
	example := "192.0.2.20:" + defPort
	if s == "" {
		v.add(key, "nothing (the key is missing)", "an address HOST:PORT", "set "+key+", e.g. "+example)
		return
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		v.add(key, strconv.Quote(s), "an address HOST:PORT", "add the port, e.g. "+net.JoinHostPort(strings.Trim(s, "[]"), defPort))
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		v.add(key, strconv.Quote(s), "a port from 0 to 65535", "fix the port, e.g. "+example)
	}
	if host == "" && wildcardOK {
		return
	}
	if _, err := netip.ParseAddr(host); err != nil && HostnameProblem(host) != "" {
		v.add(key, strconv.Quote(s), "an IP address or host name before the port", "write e.g. "+example)
	}
}

// dnsServer checks a DNS server address: HOST:PORT, or a bare IP address
// meaning port 53 (as --dns-server and resolve.New take it).
func (v *validator) dnsServer(key, s string) {
	if _, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return
	}
	v.hostPort(key, s, "53", false)
}

// HostnameProblem says what is wrong with s as a DNS host name, or "" when it
// is valid. An underscore is tolerated here (DNS allows it, and the seed
// article's srv_xmpp used one); the fqdn check warns about it.
func HostnameProblem(s string) string {
	s = strings.TrimSuffix(s, ".")
	if len(s) > 253 {
		return "longer than 253 characters"
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		switch {
		case l == "":
			return "empty label"
		case len(l) > 63:
			return "label longer than 63 characters"
		case l[0] == '-' || l[len(l)-1] == '-':
			return "label starts or ends with '-'"
		}
		for _, r := range l {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			case r > 127:
				return "non-ASCII character; write the IDNA (xn--) form"
			default:
				return fmt.Sprintf("character %q is not allowed", r)
			}
		}
	}
	return ""
}
