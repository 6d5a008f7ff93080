package checks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/xgw-gateway/xgw/gateway/config"
)

// edgeCheck does what the OCS gateway console's "Validate Connection" tab
// did: mutual TLS with the Edge using our certificate, then a SIP OPTIONS
// (seed article, step 7 and "Without a certificate, ... the MTLS
// connection will be refused").
var edgeCheck = Check{
	ID:       "edge",
	Title:    "The Edge accepts our certificate and answers SIP OPTIONS",
	Requires: []string{"tls.cert"},
	Run:      runEdge,
}

const (
	// edgeReadLimit bounds what we read from the Edge for one OPTIONS:
	// sipgo's own maximum message size.
	edgeReadLimit = 65535
	// edgeMaxMessages bounds the provisional responses and strays read
	// before the final response.
	edgeMaxMessages = 8
	// edgeT1 is RFC 3261's T1, the first UDP retransmission interval.
	edgeT1 = 500 * time.Millisecond
)

func runEdge(ctx context.Context, env *Env) []Result {
	const id = "edge"
	c := env.Config
	e := c.SIP.Edge
	target := net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
	var tlsCfg *tls.Config
	if e.Transport == "tls" {
		var res *Result
		if tlsCfg, res = edgeTLSConfig(env, target); res != nil {
			return []Result{*res}
		}
	}
	addrs, err := probeAddrs(ctx, env, e.Host)
	if err != nil {
		return []Result{fail(id, target, "sip.edge.host "+e.Host+" does not resolve: "+err.Error(),
			"an address for the Edge", "add the Edge's internal FQDN to the perimeter DNS or this host's hosts file")}
	}
	addr := net.JoinHostPort(addrs[0].String(), strconv.Itoa(e.Port))
	network := "tcp"
	if e.Transport == "udp" {
		network = "udp"
	}
	conn, err := env.Dialer.DialContext(ctx, network, addr)
	if err != nil {
		return []Result{edgeDialFailure(target, addr, err)}
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if tlsCfg != nil {
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return []Result{edgeTLSFailure(target, e.Host, err, false)}
		}
		conn = tc
	}
	code, reason, err := edgeOptions(ctx, conn, c)
	switch {
	case err != nil && tlsCfg != nil && isRemoteAlert(err):
		return []Result{edgeTLSFailure(target, e.Host, err, true)}
	case err != nil:
		return []Result{edgeSIPFailure(target, e.Transport, err)}
	case code == 200:
		return []Result{pass(id, target, fmt.Sprintf("%s %s, OPTIONS answered %d %s", edgeProto(conn, e.Transport), addr, code, reason))}
	}
	return []Result{warn(id, target, fmt.Sprintf("OPTIONS answered %d %s", code, reason),
		"200 OK to OPTIONS",
		"the Edge is reachable and accepts our certificate but refuses the request: check that the gateway is in its allow list (Federated partner Access Edge = xmpp.internal_fqdn)")}
}

// edgeTLSConfig loads our identity and the Edge's CA, or says which file
// is wrong.
func edgeTLSConfig(env *Env, target string) (*tls.Config, *Result) {
	c := env.Config
	certPEM, err := env.ReadFile(c.Path(c.TLS.Cert))
	var keyPEM []byte
	if err == nil {
		keyPEM, err = env.ReadFile(c.Path(c.TLS.Key))
	}
	var cert tls.Certificate
	if err == nil {
		cert, err = tls.X509KeyPair(certPEM, keyPEM)
	}
	if err != nil {
		r := fail("edge", target, "our certificate does not load: "+err.Error(), "tls.cert and tls.key as a matching PEM pair", "see the tls.cert result")
		return nil, &r
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ServerName:   c.SIP.Edge.Host,
		MinVersion:   tls.VersionTLS12,
	}
	if c.TLS.CA != "" {
		caPEM, err := env.ReadFile(c.Path(c.TLS.CA))
		if err != nil {
			r := fail("edge", target, "tls.ca does not load: "+err.Error(), "the PEM file of the CA that issued the Edge's certificate", "fix the tls.ca path")
			return nil, &r
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(caPEM) {
			r := fail("edge", target, "tls.ca "+c.TLS.CA+" holds no PEM certificate", "the PEM file of the CA that issued the Edge's certificate", "export the CA certificate as Base-64 (PEM) and point tls.ca at it")
			return nil, &r
		}
	}
	return cfg, nil
}

func edgeDialFailure(target, addr string, err error) Result {
	const expected = "a TCP/TLS connection to the Edge's internal interface"
	switch dialFailKind(err) {
	case failRefused:
		return fail("edge", target, "connection to "+addr+" refused", expected,
			"nothing listens there: check sip.edge.port (the Edge's internal MTLS port, usually 5061) and that the Edge service runs")
	case failConnectTimeout:
		return fail("edge", target, "no answer from "+addr+" (timed out)", expected,
			"a firewall drops the connection: allow TCP "+addr+" from the gateway to the Edge")
	}
	return fail("edge", target, "cannot connect to "+addr+": "+err.Error(), expected, "check the route from the gateway to the Edge")
}

// edgeTLSFailure explains a failed handshake. afterHandshake is set when
// the alert came on the first read: under TLS 1.3 the client finishes
// before the server has judged its certificate.
func edgeTLSFailure(target, host string, err error, afterHandshake bool) Result {
	const id = "edge"
	var hostErr x509.HostnameError
	var authErr x509.UnknownAuthorityError
	var invErr x509.CertificateInvalidError
	switch {
	case errors.As(err, &hostErr):
		return fail(id, target, fmt.Sprintf("the Edge's certificate is not valid for %s: %v", host, hostErr.Error()),
			"a certificate whose CN or SAN is sip.edge.host "+host,
			"set sip.edge.host to the name in the Edge's certificate (its internal FQDN), or reissue that certificate with "+host)
	case errors.As(err, &authErr):
		return fail(id, target, "the Edge's certificate is not signed by tls.ca: "+authErr.Error(),
			"a chain ending at the CA in tls.ca",
			"put the CA that issued the Edge's internal certificate (PEM) in tls.ca")
	case errors.As(err, &invErr):
		return fail(id, target, "the Edge's certificate is not valid: "+invErr.Error(),
			"a current certificate on the Edge", "renew the Edge's certificate")
	case isRemoteAlert(err):
		when := "during the handshake"
		if afterHandshake {
			when = "after the handshake (TLS 1.3)"
		}
		return fail(id, target, "the Edge refused our certificate "+when+": "+alertText(err),
			"the Edge trusting the CA of tls.cert", refusedFix(err))
	}
	return fail(id, target, "TLS handshake failed: "+err.Error(), "a mutual TLS handshake", "check that sip.edge.port is the Edge's MTLS port")
}

// refusedFix reads the Edge's alert (RFC 8446 §6.2): a refused usage or
// key is not cured by trusting our CA. crypto/tls reports a received alert
// with an unexported type, so its text is what there is to compare.
func refusedFix(err error) string {
	switch alertText(err) {
	case "tls: unsupported certificate":
		return "the Edge refuses our certificate's usages: it must allow Client Authentication (see tls.eku)"
	case "tls: bad certificate":
		return "the Edge refuses the certificate itself, e.g. a key under 2048 bits or a missing usage (see tls.key and tls.eku); if those pass, add our CA to its trusted roots"
	}
	return "the Edge refused our certificate: add our CA to its trusted roots (and the gateway's internal FQDN to its allow list)"
}

// isRemoteAlert reports whether err is a TLS alert sent by the peer;
// crypto/tls reports those as *net.OpError with Op "remote error".
func isRemoteAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

func alertText(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

func edgeSIPFailure(target, transport string, err error) Result {
	const expected = "a final SIP response to OPTIONS"
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		fix := "the Edge accepted the connection but did not answer: check that it listens for SIP on this port"
		if transport == "udp" {
			fix = "no answer over UDP: check sip.edge.port and that the peer listens on UDP"
		}
		return fail("edge", target, "no answer to OPTIONS before the deadline", expected, fix)
	case errors.Is(err, errConnRefused): // ICMP port unreachable on UDP
		return fail("edge", target, "nothing listens there (port unreachable)", expected,
			"check sip.edge.port and that the peer listens on "+transport)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return fail("edge", target, "the Edge closed the connection without answering OPTIONS", expected,
			"an Edge closes connections from servers it does not trust: add our CA to its trusted roots and the gateway's internal FQDN to its allow list")
	}
	return fail("edge", target, "OPTIONS failed: "+err.Error(), expected, "check that the peer at sip.edge speaks SIP")
}

func edgeProto(conn net.Conn, transport string) string {
	if tc, ok := conn.(*tls.Conn); ok {
		return "mutual " + tls.VersionName(tc.ConnectionState().Version) + " handshake with"
	}
	return strings.ToUpper(transport) + " to"
}

// edgeOptions sends one OPTIONS on conn and returns the final response's
// status. Over UDP the request is retransmitted as RFC 3261 §17.1.2.2
// prescribes until the ctx deadline.
func edgeOptions(ctx context.Context, conn net.Conn, c *config.Config) (int, string, error) {
	req, callID := edgeOptionsRequest(conn, c)
	wire := []byte(req.String())
	if _, err := conn.Write(wire); err != nil {
		return 0, "", err
	}
	if c.SIP.Edge.Transport == "udp" {
		return edgeReadUDP(ctx, conn, wire, callID)
	}
	return edgeReadStream(conn, callID)
}

func edgeOptionsRequest(conn net.Conn, c *config.Config) (*sip.Request, string) {
	e := c.SIP.Edge
	transport := strings.ToUpper(e.Transport)
	local, _ := netip.ParseAddrPort(conn.LocalAddr().String())
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: e.Host, Port: e.Port})
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: transport,
		Host: local.Addr().String(), Port: int(local.Port()), Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranch())
	via.Params.Add("rport", "")
	req.AppendHeader(via)
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "xgw-check", Host: c.XMPP.InternalFQDN}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", Host: e.Host, Port: e.Port}})
	callID := sip.CallIDHeader(sip.GenerateTagN(24) + "@" + c.XMPP.InternalFQDN)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.OPTIONS})
	req.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	req.SetBody(nil)
	return req, string(callID)
}

// edgeReadStream reads responses from a stream transport until the final
// one for callID, at most edgeReadLimit bytes and edgeMaxMessages messages.
func edgeReadStream(conn net.Conn, callID string) (int, string, error) {
	ps := sip.NewParser().NewSIPStream()
	defer ps.Close()
	r := io.LimitReader(conn, edgeReadLimit)
	buf := make([]byte, 4096)
	for seen := 0; seen < edgeMaxMessages; {
		msg, _, err := ps.ParseNext()
		if errors.Is(err, io.ErrUnexpectedEOF) {
			n, rerr := r.Read(buf)
			if n > 0 {
				ps.Write(buf[:n])
				continue
			}
			if rerr == io.EOF && ps.Buffer().Len() > 0 {
				return 0, "", fmt.Errorf("the answer is incomplete or larger than %d bytes", edgeReadLimit)
			}
			return 0, "", rerr
		}
		if err != nil {
			return 0, "", fmt.Errorf("unparsable SIP answer: %w", err)
		}
		seen++
		if code, reason, final := edgeFinal(msg, callID); final {
			return code, reason, nil
		}
	}
	return 0, "", fmt.Errorf("no final response among the first %d messages", edgeMaxMessages)
}

// edgeReadUDP waits for the final response, retransmitting the request
// at T1, 2*T1, 4*T1... while none came.
func edgeReadUDP(ctx context.Context, conn net.Conn, wire []byte, callID string) (int, string, error) {
	p := sip.NewParser()
	buf := make([]byte, edgeReadLimit)
	interval := edgeT1
	for seen := 0; seen < edgeMaxMessages; {
		next := time.Now().Add(interval)
		if dl, ok := ctx.Deadline(); ok && dl.Before(next) {
			next = dl
		}
		conn.SetReadDeadline(next)
		n, err := conn.Read(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
			if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
				return 0, "", err
			}
			conn.Write(wire)
			interval = min(2*interval, 4*time.Second)
			continue
		}
		if err != nil {
			return 0, "", err
		}
		msg, err := p.ParseSIP(buf[:n])
		if err != nil {
			return 0, "", fmt.Errorf("unparsable SIP answer: %w", err)
		}
		seen++
		if code, reason, final := edgeFinal(msg, callID); final {
			return code, reason, nil
		}
	}
	return 0, "", fmt.Errorf("no final response among the first %d messages", edgeMaxMessages)
}

// edgeFinal reports whether msg is the final response to our request.
func edgeFinal(msg sip.Message, callID string) (int, string, bool) {
	res, ok := msg.(*sip.Response)
	if !ok || res.CallID() == nil || string(*res.CallID()) != callID || res.IsProvisional() {
		return 0, "", false
	}
	return res.StatusCode, res.Reason, true
}
