package checks

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// The bind checks catch the seed article's "manual config gotcha": the OCS
// gateway's SipIP and XmppIP had to be typed into TGWConsoleGUI.dll.config
// by hand, and were left unset or copied from another server. The gateway
// then cannot listen where the Edge and the firewall send traffic.
var (
	bindSIPCheck = Check{
		ID:    "bind.sip",
		Title: "sip.listen is a local address and its port is free (or held by xgw)",
		Run: func(ctx context.Context, env *Env) []Result {
			network := "tcp"
			if env.Config.SIP.Edge.Transport == "udp" {
				network = "udp"
			}
			return []Result{probeBind(ctx, env, bindSpec{id: "bind.sip", key: "sip.listen", addr: env.Config.SIP.Listen,
				network: network, port: "the port the Edge sends to (its XMPP gateway route)", identify: identifySIP})}
		},
	}
	bindXMPPCheck = Check{
		ID:    "bind.xmpp",
		Title: "xmpp.listen is a local address and its port is free (or held by xgw)",
		Run: func(ctx context.Context, env *Env) []Result {
			c := env.Config
			// Each probe alone would find the port free; xgw could not
			// then bind both.
			if c.SIP.Edge.Transport != "udp" && samePort(c.SIP.Listen, c.XMPP.Listen) {
				_, port, _ := net.SplitHostPort(c.XMPP.Listen)
				return []Result{fail("bind.xmpp", c.XMPP.Listen,
					fmt.Sprintf("xmpp.listen %s and sip.listen %s share TCP port %s", c.XMPP.Listen, c.SIP.Listen, port),
					"two ports: SIP from the Edge (usually 5061) and XMPP from peers (5269)",
					"give each its own port: sip.listen usually HOST:5061 (what the Edge routes to), xmpp.listen HOST:5269 (what the SRV records name)")}
			}
			return []Result{probeBind(ctx, env, bindSpec{id: "bind.xmpp", key: "xmpp.listen", addr: c.XMPP.Listen,
				network: "tcp", port: "the firewall's port forward and the SRV records", identify: identifyXMPP})}
		},
	}
)

// identifyTimeout bounds the attempt to recognise who holds a busy port:
// xgw on a local address answers in milliseconds.
const identifyTimeout = time.Second

// bindSpec is one listen address to probe.
type bindSpec struct {
	id, key, addr string
	network       string // tcp or udp
	port          string // what else must change with the port, for the fix
	// identify connects to a busy port and says who answered, and
	// whether it is xgw itself.
	identify func(ctx context.Context, env *Env, addr string) (who string, ours bool)
}

func probeBind(ctx context.Context, env *Env, b bindSpec) Result {
	host, port, err := net.SplitHostPort(b.addr)
	if err != nil {
		return fail(b.id, b.addr, fmt.Sprintf("%s %q is not HOST:PORT", b.key, b.addr), "an address such as 192.0.2.20:5269", "correct "+b.key)
	}
	ip, bad := listenIP(ctx, b, host)
	if bad != nil {
		return *bad
	}
	wildcard := !ip.IsValid() || ip.IsUnspecified()
	locals, localsErr := env.LocalAddrs()
	listed := wildcard || slices.Contains(locals, ip)

	err = tryListen(ctx, b.network, b.addr)
	switch {
	case err == nil:
		var where string
		switch {
		case wildcard:
			where = "the wildcard address (every interface)"
		case listed:
			where = ip.String() + ", an address of this host,"
		default:
			where = ip.String() + ", not on an interface but accepted by the kernel (as 127.0.0.0/8 is on Linux),"
		}
		return pass(b.id, b.addr, fmt.Sprintf("%s %s: %s is free on %s/%s", b.key, b.addr, where, port, b.network))
	case errors.Is(err, errAddrNotAvail):
		return fail(b.id, b.addr,
			fmt.Sprintf("%s %s: %s is not an address of this host (its addresses: %s)", b.key, b.addr, ip, localList(locals, localsErr)),
			"an address of one of this host's interfaces, or 0.0.0.0 / [::] for all",
			fmt.Sprintf("set %s to this server's own address%s; like the OCS gateway's SipIP/XmppIP it must not be left unset or copied from another server", b.key, suggestAddr(locals, port)))
	case errors.Is(err, errAddrInUse):
		who, ours := b.identify(ctx, env, dialTarget(ip, port))
		if ours {
			return pass(b.id, b.addr, fmt.Sprintf("%s %s: the port is held by xgw itself (%s)", b.key, b.addr, who))
		}
		return fail(b.id, b.addr,
			fmt.Sprintf("%s %s: port in use by another process (%s)", b.key, b.addr, who),
			"a free port, or xgw itself listening there",
			fmt.Sprintf("find the process with ss -ltnup 'sport = :%s' (Windows: netstat -abno | findstr :%s) and stop it, or move xgw to another port in %s and change %s to match", port, port, b.key, b.port))
	case errors.Is(err, fs.ErrPermission):
		return fail(b.id, b.addr, fmt.Sprintf("%s %s: permission denied binding port %s", b.key, b.addr, port),
			"a port xgw may bind",
			"ports below 1024 need root or CAP_NET_BIND_SERVICE (setcap cap_net_bind_service=+ep /usr/local/bin/xgw); the standard ports 5061 and 5269 need neither")
	default:
		return fail(b.id, b.addr, fmt.Sprintf("%s %s cannot be bound: %v", b.key, b.addr, err),
			"an address xgw can listen on", "check "+b.key+" and the host's network configuration")
	}
}

// listenIP returns the address host names; invalid for the wildcard "".
// A host name is resolved the way net.Listen will resolve it.
func listenIP(ctx context.Context, b bindSpec, host string) (netip.Addr, *Result) {
	if host == "" {
		return netip.Addr{}, nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().WithZone(""), nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		r := fail(b.id, b.addr, fmt.Sprintf("%s host %s does not resolve on this host: %v", b.key, host, err),
			"an IP address of this host (a name must resolve to one)", "write the IP address in "+b.key+", e.g. 192.0.2.20:5269")
		return netip.Addr{}, &r
	}
	// net.Listen takes the first IPv4 address when there is one.
	i := slices.IndexFunc(addrs, func(a netip.Addr) bool { return a.Unmap().Is4() })
	return addrs[max(i, 0)].Unmap().WithZone(""), nil
}

// samePort reports whether two listen addresses compete for one port:
// same port, and the same host or a wildcard on either side.
func samePort(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb || pa == "0" {
		return false
	}
	wild := func(h string) bool {
		ip, err := netip.ParseAddr(h)
		return h == "" || err == nil && ip.IsUnspecified()
	}
	ia, errA := netip.ParseAddr(ha)
	ib, errB := netip.ParseAddr(hb)
	return wild(ha) || wild(hb) || strings.EqualFold(ha, hb) || errA == nil && errB == nil && ia.Unmap() == ib.Unmap()
}

// tryListen binds addr and releases it at once.
func tryListen(ctx context.Context, network, addr string) error {
	var lc net.ListenConfig
	if network == "udp" {
		pc, err := lc.ListenPacket(ctx, network, addr)
		if err != nil {
			return err
		}
		return pc.Close()
	}
	ln, err := lc.Listen(ctx, network, addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

// dialTarget is where to knock on a busy port: the wildcard is reached on
// loopback.
func dialTarget(ip netip.Addr, port string) string {
	switch {
	case !ip.IsValid() || ip == netip.IPv4Unspecified():
		return net.JoinHostPort("127.0.0.1", port)
	case ip == netip.IPv6Unspecified():
		return net.JoinHostPort("::1", port)
	}
	return net.JoinHostPort(ip.String(), port)
}

func localList(locals []netip.Addr, err error) string {
	if err != nil {
		return "unknown: " + err.Error()
	}
	s := make([]string, len(locals))
	for i, a := range locals {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// suggestAddr proposes the first non-loopback local address.
func suggestAddr(locals []netip.Addr, port string) string {
	for _, a := range locals {
		if !a.IsLoopback() && !a.IsLinkLocalUnicast() {
			return ", e.g. " + net.JoinHostPort(a.String(), port) + ", or 0.0.0.0:" + port + " for all"
		}
	}
	return ", or 0.0.0.0:" + port + " for all"
}

// identifyXMPP opens an XMPP stream to the busy port. xgw answers for the
// SIP domains it serves (RFC 6120 §4.7.1: the answer's from is the domain
// asked for).
func identifyXMPP(ctx context.Context, env *Env, addr string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, identifyTimeout)
	defer cancel()
	st, err := dialXMPPStream(ctx, env.Dialer, addr, firstDomain(env.Config))
	if err != nil {
		return err.Error(), false
	}
	if st.From != "" && slices.ContainsFunc(env.Config.SIP.Domains, func(d string) bool { return strings.EqualFold(d, st.From) }) {
		return "an XMPP server answering for " + st.From, true
	}
	return "an XMPP server that is not xgw for these domains: " + st.summary(), false
}

// errSeenCert stops the TLS handshake once the server's certificate is in.
var errSeenCert = errors.New("server certificate received")

// identifySIP recognises xgw on a SIP TLS port by the certificate it
// presents: our own tls.cert. Plain TCP and UDP SIP carry nothing to
// recognise xgw by.
func identifySIP(ctx context.Context, env *Env, addr string) (string, bool) {
	if t := env.Config.SIP.Edge.Transport; t != "tls" {
		return "with transport " + t + " xgw cannot tell who it is", false
	}
	chain, bad := loadCertChain(env, "", "")
	if bad != nil {
		return "it cannot be compared with tls.cert, which did not load", false
	}
	ctx, cancel := context.WithTimeout(ctx, identifyTimeout)
	defer cancel()
	var presented []byte
	d := tls.Dialer{NetDialer: env.Dialer, Config: &tls.Config{
		ServerName: env.Config.XMPP.InternalFQDN,
		// Nothing is trusted here: the presented certificate is only
		// compared byte for byte with ours, then the handshake stops.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) > 0 {
				presented = raw[0]
			}
			return errSeenCert
		},
	}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		conn.Close()
	}
	switch {
	case presented == nil:
		return fmt.Sprintf("no TLS server answered: %v", err), false
	case bytes.Equal(presented, chain[0].Raw):
		return "a TLS server presenting our certificate, " + certSummary(chain[0]), true
	}
	if c, err := x509.ParseCertificate(presented); err == nil {
		return "a TLS server presenting another certificate, " + certSummary(c), false
	}
	return "a TLS server presenting an unreadable certificate", false
}
