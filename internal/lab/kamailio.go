package lab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/internal/testenv"
)

// KamailioConfig describes a Kamailio playing the OCS/Lync Edge: it answers
// OPTIONS with 200 and relays the methods of Routes to their next hop.
type KamailioConfig struct {
	// Addr is IP:PORT to listen on, e.g. 127.0.2.10:5061.
	Addr string
	// Transport is tls (default), tcp or udp.
	Transport string
	// Aliases are host names Kamailio treats as its own (e.g. the Edge's
	// FQDN), so requests addressed to them are answered, not relayed.
	Aliases []string
	// CertFile and KeyFile are the Edge's identity (PEM), required for tls.
	CertFile, KeyFile string
	// CAFile holds the CAs Kamailio trusts: for our client certificate
	// and for the servers it relays to over TLS.
	CAFile string
	// RequireClientCert makes the TLS server demand and verify a client
	// certificate, as an Edge does with its federation partners.
	RequireClientCert bool
	// Routes are checked in order before the OPTIONS answer.
	Routes []KamailioRoute
	// Listen adds sockets as PROTO:IP:PORT (e.g. udp:127.0.2.10:5060), so
	// requests can be relayed between transports (a TLS Edge in front of a
	// UDP user agent).
	Listen []string
}

// KamailioRoute relays requests of Methods whose request-URI domain is one
// of Domains to NextHop, statefully (tm).
type KamailioRoute struct {
	Methods []string // e.g. MESSAGE, SUBSCRIBE, NOTIFY
	Domains []string // request-URI host, e.g. gmail.test
	// NextHop is a SIP URI, e.g. sip:127.0.1.5:5061;transport=tls.
	NextHop string
}

// Kamailio is a running kamailio process.
type Kamailio struct {
	Addr string
	// Dir holds kamailio.cfg and tls.cfg.
	Dir string

	cmd    *exec.Cmd
	exited chan struct{}
	log    *kamLog
}

const (
	// kamReadyWait bounds the start: Kamailio forks its children and
	// listens within a second on two cores.
	kamReadyWait = 15 * time.Second
	// kamStopWait bounds the graceful stop before SIGKILL.
	kamStopWait = 5 * time.Second
	// kamLogLimit keeps the log of a chatty run from growing without bound.
	kamLogLimit = 256 << 10
)

var (
	kamMethodRe = regexp.MustCompile(`^[A-Z]{2,16}$`)
	kamNameRe   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)
	kamListenRe = regexp.MustCompile(`^(udp|tcp|tls):[0-9.]+:[0-9]{1,5}$`)
	kamURIRe    = regexp.MustCompile(`^sips?:[A-Za-z0-9.:\[\]-]+(;[a-z]+=[A-Za-z0-9]+)*$`)
)

// StartKamailio writes a kamailio.cfg to a temporary directory, starts
// `kamailio -DD -E` on it and returns once cfg.Addr accepts connections
// (or answers OPTIONS, for udp). The process is stopped by PID when the
// test ends. It needs the test namespace (testenv.Netns) so it can take
// any 127.x address and standard ports.
func StartKamailio(t testing.TB, cfg KamailioConfig) *Kamailio {
	t.Helper()
	testenv.Netns(t)
	bin := testenv.Binary(t, "kamailio")
	if cfg.Transport == "" {
		cfg.Transport = "tls"
	}
	if err := cfg.check(); err != nil {
		t.Fatalf("lab: kamailio config: %v", err)
	}
	dir := t.TempDir()
	k := &Kamailio{Addr: cfg.Addr, Dir: dir, exited: make(chan struct{}), log: &kamLog{}}
	tlsCfg := filepath.Join(dir, "tls.cfg")
	if cfg.Transport == "tls" {
		kamWrite(t, tlsCfg, cfg.tlsCfg())
	}
	cfgFile := filepath.Join(dir, "kamailio.cfg")
	kamWrite(t, cfgFile, cfg.script(tlsCfg))

	// -DD: stay in the foreground so our PID is the main process;
	// -E: log to stderr; -Y: runtime files in our directory; small
	// memory pools for a 2-core test machine.
	k.cmd = exec.Command(bin, "-DD", "-E", "-f", cfgFile, "-Y", dir, "-m", "32", "-M", "4")
	k.cmd.Stdout, k.cmd.Stderr = k.log, k.log
	// Its own process group: the children it forks can be stopped with
	// it by group ID if the main process dies first.
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("lab: start kamailio: %v", err)
	}
	go func() { k.cmd.Wait(); close(k.exited) }()
	t.Cleanup(func() { k.stop(t) })
	if err := k.waitReady(cfg.Transport); err != nil {
		t.Fatalf("lab: kamailio on %s/%s: %v\n%s", cfg.Addr, cfg.Transport, err, k.LogTail(30))
	}
	return k
}

// Log returns what Kamailio wrote to stderr so far.
func (k *Kamailio) Log() string { return k.log.String() }

// LogTail returns the last n lines of the log.
func (k *Kamailio) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(k.Log(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (k *Kamailio) waitReady(transport string) error {
	deadline := time.Now().Add(kamReadyWait)
	for try := 0; time.Now().Before(deadline); try++ {
		select {
		case <-k.exited:
			return fmt.Errorf("kamailio exited: %v", k.cmd.ProcessState)
		default:
		}
		if kamAnswers(transport, k.Addr) {
			return nil
		}
		time.Sleep(time.Duration(min(20*(try+1), 200)) * time.Millisecond)
	}
	return fmt.Errorf("not answering after %v", kamReadyWait)
}

// kamAnswers reports whether something answers on addr: a TCP connect
// for tcp/tls, a reply to an OPTIONS datagram for udp.
func kamAnswers(transport, addr string) bool {
	if transport != "udp" {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	local := c.LocalAddr().String()
	fmt.Fprintf(c, "OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bKlabready\r\nMax-Forwards: 70\r\n"+
		"From: <sip:ready@lab.test>;tag=lab\r\nTo: <sip:%s>\r\nCall-ID: labready@lab.test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
		addr, local, addr)
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err = c.Read(make([]byte, 2048))
	return err == nil
}

func (k *Kamailio) stop(t testing.TB) {
	pid := k.cmd.Process.Pid
	k.cmd.Process.Signal(syscall.SIGTERM) // kamailio stops its children, then itself
	select {
	case <-k.exited:
	case <-time.After(kamStopWait):
		t.Logf("lab: kamailio %d ignored SIGTERM for %v; killing its process group", pid, kamStopWait)
		// The group is ours (Setpgid above) and still led by our
		// process, so its ID cannot have been reused.
		syscall.Kill(-pid, syscall.SIGKILL)
		select {
		case <-k.exited:
		case <-time.After(kamStopWait):
			t.Errorf("lab: kamailio %d still running after SIGKILL", pid)
		}
	}
	if t.Failed() {
		t.Logf("kamailio log (last lines):\n%s", k.LogTail(40))
	}
}

func (cfg KamailioConfig) check() error {
	if _, err := net.ResolveTCPAddr("tcp", cfg.Addr); err != nil || !strings.Contains(cfg.Addr, ":") {
		return fmt.Errorf("Addr %q: want IP:PORT", cfg.Addr)
	}
	switch cfg.Transport {
	case "tls":
		if cfg.CertFile == "" || cfg.KeyFile == "" {
			return errors.New("transport tls needs CertFile and KeyFile")
		}
		if cfg.RequireClientCert && cfg.CAFile == "" {
			return errors.New("RequireClientCert needs CAFile to verify the client certificate against")
		}
	case "tcp", "udp":
	default:
		return fmt.Errorf("Transport %q: want tls, tcp or udp", cfg.Transport)
	}
	for _, f := range []string{cfg.CertFile, cfg.KeyFile, cfg.CAFile} {
		if strings.ContainsAny(f, "\"\n\r") {
			return fmt.Errorf("file name %q: quotes and line breaks cannot go into kamailio.cfg", f)
		}
	}
	for _, l := range cfg.Listen {
		if !kamListenRe.MatchString(l) {
			return fmt.Errorf("listen %q: want PROTO:IP:PORT such as udp:127.0.2.10:5060", l)
		}
	}
	for _, a := range cfg.Aliases {
		if !kamNameRe.MatchString(a) {
			return fmt.Errorf("alias %q: want a host name", a)
		}
	}
	for i, r := range cfg.Routes {
		if len(r.Methods) == 0 || len(r.Domains) == 0 {
			return fmt.Errorf("route %d: needs Methods and Domains", i)
		}
		for _, m := range r.Methods {
			if !kamMethodRe.MatchString(m) {
				return fmt.Errorf("route %d: method %q: want an upper-case SIP method", i, m)
			}
		}
		for _, d := range r.Domains {
			if !kamNameRe.MatchString(d) {
				return fmt.Errorf("route %d: domain %q: want a host name", i, d)
			}
		}
		if !kamURIRe.MatchString(r.NextHop) {
			return fmt.Errorf("route %d: next hop %q: want a SIP URI such as sip:127.0.1.5:5061;transport=tls", i, r.NextHop)
		}
	}
	return nil
}

// script renders kamailio.cfg. Routes come first so that OPTIONS for a
// relayed domain is relayed too; everything else addressed elsewhere gets
// 404, never an open relay.
func (cfg KamailioConfig) script(tlsCfg string) string {
	var b strings.Builder
	b.WriteString("#!KAMAILIO\n# written by xgw internal/lab for one test\n")
	fmt.Fprintf(&b, "debug=2\nlog_stderror=yes\nchildren=2\ntcp_children=2\nauto_aliases=no\n")
	fmt.Fprintf(&b, "listen=%s:%s\n", cfg.Transport, cfg.Addr)
	for _, l := range cfg.Listen {
		fmt.Fprintf(&b, "listen=%s\n", l)
	}
	for _, a := range cfg.Aliases {
		fmt.Fprintf(&b, "alias=%q\n", a)
	}
	if cfg.Transport == "tls" {
		b.WriteString("enable_tls=yes\n")
	}
	b.WriteString("tcp_accept_no_cl=yes\n\n")
	if cfg.Transport == "tls" {
		// OpenSSL must be set up by tls.so before any other module.
		b.WriteString("loadmodule \"tls.so\"\n")
		fmt.Fprintf(&b, "modparam(\"tls\", \"config\", %q)\n", tlsCfg)
	}
	for _, m := range []string{"tm", "sl", "maxfwd", "textops", "siputils", "pv", "xlog"} {
		fmt.Fprintf(&b, "loadmodule \"%s.so\"\n", m)
	}
	b.WriteString(`
request_route {
	if (!mf_process_maxfwd_header("10")) {
		sl_send_reply("483", "Too Many Hops");
		exit;
	}
	xlog("L_INFO", "lab: $rm $ru from $si:$sp/$pr\n");
`)
	for _, r := range cfg.Routes {
		var methods, domains []string
		for _, m := range r.Methods {
			methods = append(methods, fmt.Sprintf("is_method(%q)", m))
		}
		for _, d := range r.Domains {
			domains = append(domains, fmt.Sprintf("$rd == %q", d))
		}
		fmt.Fprintf(&b, "\tif ((%s) && (%s)) {\n\t\t$du = %q;\n\t\tif (!t_relay()) {\n\t\t\tsl_reply_error();\n\t\t}\n\t\texit;\n\t}\n",
			strings.Join(methods, " || "), strings.Join(domains, " || "), r.NextHop)
	}
	b.WriteString(`	if (is_method("OPTIONS")) {
		sl_send_reply("200", "OK");
		exit;
	}
	sl_send_reply("404", "Not Here");
}
`)
	return b.String()
}

// tlsCfg renders the tls module's file: the server side for connections
// to the Edge, the client side for the ones it opens to next hops.
func (cfg KamailioConfig) tlsCfg() string {
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	var b strings.Builder
	for _, side := range []string{"server", "client"} {
		verify := cfg.RequireClientCert
		if side == "client" {
			verify = cfg.CAFile != ""
		}
		fmt.Fprintf(&b, "[%s:default]\nmethod = TLSv1.2+\nverify_certificate = %s\nrequire_certificate = %s\n",
			side, yes(verify), yes(verify))
		fmt.Fprintf(&b, "certificate = %s\nprivate_key = %s\n", cfg.CertFile, cfg.KeyFile)
		if cfg.CAFile != "" {
			fmt.Fprintf(&b, "ca_list = %s\n", cfg.CAFile)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func kamWrite(t testing.TB, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
		t.Fatalf("lab: %v", err)
	}
}

// kamLog is a bounded, concurrency-safe log buffer: it keeps the last
// kamLogLimit bytes, where the reason for a failure usually is.
type kamLog struct {
	mu      sync.Mutex
	b       []byte
	dropped int
}

func (l *kamLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if over := len(l.b) - kamLogLimit; over > 0 {
		l.dropped += over
		l.b = append(l.b[:0], l.b[over:]...)
	}
	return len(p), nil
}

func (l *kamLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dropped > 0 {
		return fmt.Sprintf("[first %d bytes of the log dropped]\n", l.dropped) + string(l.b)
	}
	return string(l.b)
}
