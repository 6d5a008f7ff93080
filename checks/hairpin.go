package checks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
)

// netHairpinCheck dials the firewall's public address from inside, as the
// Edge does when it is given the public FQDN (seed article, step 3: "if
// your firewall does not allow loopbacks, the connection will fail"). Like
// tailscale's netcheck it has three outcomes: reached, not reached, and
// skipped when there is nothing to test.
//
// It requires bind.xmpp: both bind xmpp.listen for a moment, so they must
// not run at the same time, and a hairpin test from a host that cannot
// hold xmpp.listen proves nothing about the gateway.
var netHairpinCheck = Check{
	ID:       "net.hairpin",
	Title:    "From inside, public_ip:5269 loops back to this gateway (firewall NAT loopback)",
	Requires: []string{"bind.xmpp"},
	Run:      runHairpin,
}

const (
	// hairpinMaxConns bounds the connections our probe listener answers:
	// net.hairpin makes one, net.xmpp one per address of external_fqdn;
	// the rest are strangers.
	hairpinMaxConns = 8
	// hairpinConnWait bounds one answered connection.
	hairpinConnWait = 2 * time.Second
)

// hairpinCantTell is why a failed hairpin probe is not the whole story.
const hairpinCantTell = "from inside, \"refused\" or \"timeout\" cannot tell a missing port forward from a firewall without NAT loopback (hairpin); net.xmpp run from outside tells them apart"

func runHairpin(ctx context.Context, env *Env) []Result {
	const id = "net.hairpin"
	c := env.Config
	if c.XMPP.PublicIP == "" {
		return []Result{skip(id, "", "xmpp.public_ip is not set: the gateway is not behind a NAT firewall, or the address is unknown")}
	}
	target := net.JoinHostPort(c.XMPP.PublicIP, strconv.Itoa(config.XMPPServerPort))

	// Listen on xmpp.listen ourselves when the port is free, so that the
	// answer coming back through the public address proves it is us.
	nonce, listenErr, stop := standIn(c.XMPP.Listen)
	defer stop()

	// Whether the Edge depends on this path needs DNS; ask while dialing
	// so a dial that uses up the deadline leaves the answer ready.
	type verdict struct {
		why string
		yes bool
	}
	public := make(chan verdict, 1)
	go func() {
		why, yes := edgeUsesPublic(ctx, env)
		public <- verdict{why, yes}
	}()

	st, err := dialXMPPStream(ctx, env.Dialer, target, firstDomain(c))
	if err != nil {
		v := <-public
		return []Result{hairpinNotReached(target, err, v.why, v.yes)}
	}
	switch {
	case listenErr == nil && st.ID == nonce:
		return []Result{pass(id, target, target+" reached this gateway: the probe listener on "+c.XMPP.Listen+" answered through the public address (firewall loopback works)")}
	case listenErr == nil:
		return []Result{fail(id, target,
			fmt.Sprintf("%s answered with an XMPP stream (id=%q), but not from this gateway: our probe listener on %s never saw the connection", target, st.ID, c.XMPP.Listen),
			"the public address's port 5269 forwarded to this gateway ("+c.XMPP.Listen+")",
			"the firewall forwards port 5269 to another host: point the port forward at xmpp.private_ip "+c.XMPP.PrivateIP)}
	case errors.Is(listenErr, errAddrInUse):
		return []Result{pass(id, target, target+" answered with an XMPP stream ("+st.summary()+"); xmpp.listen "+c.XMPP.Listen+" is held, presumably by xgw serve, so the answer is taken as this gateway's")}
	}
	return []Result{warn(id, target,
		target+" answered with an XMPP stream, but whether it is this gateway is unknown: cannot listen on xmpp.listen "+c.XMPP.Listen+": "+listenErr.Error(),
		"a probe listener on xmpp.listen answering through the public address",
		"run xgw check on the gateway host itself (see bind.xmpp)")}
}

// hairpinNotReached grades a failed probe: a fail when the Edge will go
// through the firewall to reach us, a warn otherwise.
func hairpinNotReached(target string, err error, why string, edgeUsesPublic bool) Result {
	const id = "net.hairpin"
	found := err.Error()
	var se *streamError
	if errors.As(err, &se) && (se.Kind == failNotXMPP || se.Kind == failClosed) {
		found += " (the firewall itself, or the forward goes to another service)"
	}
	expected := "an XMPP stream from this gateway through " + target
	if edgeUsesPublic {
		return fail(id, target, found+"; "+why+", so the Edge reaches the gateway through the firewall",
			expected,
			"enable NAT loopback (hairpin NAT: DNAT plus source NAT for inside clients) on the firewall for port 5269, or give the Edge an internal FQDN that maps to xmpp.private_ip (seed article, step 3); "+hairpinCantTell)
	}
	return warn(id, target, found+"; the Edge uses the internal FQDN, so only peers outside depend on this path",
		expected,
		"nothing to do if net.xmpp passes from outside; "+hairpinCantTell)
}

// edgeUsesPublic reports whether the Edge will connect to the gateway by
// its public address: one FQDN for both roles, or the internal FQDN
// resolving to the public IP.
func edgeUsesPublic(ctx context.Context, env *Env) (string, bool) {
	c := env.Config
	if strings.EqualFold(strings.TrimSuffix(c.XMPP.InternalFQDN, "."), strings.TrimSuffix(c.XMPP.ExternalFQDN, ".")) {
		return "xmpp.internal_fqdn equals xmpp.external_fqdn " + c.XMPP.ExternalFQDN, true
	}
	addrs, err := probeAddrs(ctx, env, c.XMPP.InternalFQDN)
	if err != nil {
		return "", false
	}
	for _, a := range addrs {
		if a.String() == c.XMPP.PublicIP {
			return "xmpp.internal_fqdn " + c.XMPP.InternalFQDN + " resolves to public_ip " + c.XMPP.PublicIP, true
		}
	}
	return "", false
}

// standIns are the probe listeners on xmpp.listen, by address. net.xmpp
// and net.hairpin share one, so they probe at the same time: taking turns,
// a silent target made the second wait out the whole deadline and then
// report a connect timeout it never had.
var (
	standInMu sync.Mutex
	standIns  = map[string]*standInListener{}
)

type standInListener struct {
	nonce string
	err   error
	stop  func() // nil when err is set
	users int
}

// standIn listens on addr (xmpp.listen) when the port is free and answers
// stream headers with id=nonce, so a probe that reaches the gateway's
// address before `xgw serve` runs can prove the path ends here. listenErr
// says why it could not (errAddrInUse: presumably xgw serve holds it);
// stop must be called in every case. Callers at the same time share the
// listener and its nonce.
func standIn(addr string) (nonce string, listenErr error, stop func()) {
	standInMu.Lock()
	defer standInMu.Unlock()
	s := standIns[addr]
	if s == nil {
		s = &standInListener{nonce: hairpinNonce()}
		if addr == "" {
			s.err = errors.New("xmpp.listen is not set")
		} else if ln, err := net.Listen("tcp", addr); err != nil {
			s.err = err
		} else {
			s.stop = hairpinServe(ln, s.nonce)
		}
		standIns[addr] = s
	}
	s.users++
	return s.nonce, s.err, func() {
		standInMu.Lock()
		defer standInMu.Unlock()
		if s.users--; s.users > 0 {
			return
		}
		delete(standIns, addr)
		if s.stop != nil {
			s.stop() // under the lock: the next caller must find the port free again
		}
	}
}

func hairpinNonce() string {
	b := make([]byte, 12)
	rand.Read(b)
	return "xgw-hairpin-" + hex.EncodeToString(b)
}

// hairpinServe answers up to hairpinMaxConns connections on ln with a
// stream header carrying id=nonce. The returned func closes ln and waits
// for the answers in flight (each bounded by hairpinConnWait).
func hairpinServe(ln net.Listener, nonce string) (stop func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range hairpinMaxConns {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				hairpinAnswer(conn, nonce)
			}()
		}
	}()
	return func() {
		ln.Close()
		wg.Wait()
	}
}

func hairpinAnswer(conn net.Conn, nonce string) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(hairpinConnWait))
	dec := xml.NewDecoder(io.LimitReader(conn, 4096))
	start, err := firstElement(dec)
	if err != nil || start.Name.Space != nsStreams || start.Name.Local != "stream" {
		return
	}
	fmt.Fprintf(conn, `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='%s' xmlns:db='%s' id='%s' version='1.0'><stream:features/>`,
		nsStreams, nsDialback, nonce)
	// Wait for the probe to end its stream, so it reads ours in full.
	io.Copy(io.Discard, io.LimitReader(conn, 4096))
}
