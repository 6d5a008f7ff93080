package lab

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/internal/certtest"
	"github.com/xgw-gateway/xgw/internal/testenv"
)

// Prosody's fixed ports in the lab: each instance has its own address.
const (
	ProsodyC2SPort = 5222
	ProsodyS2SPort = 5269
)

// ProsodyConfig describes one Prosody instance serving one domain.
type ProsodyConfig struct {
	Domain string // e.g. "a.test"
	// Addr is the instance's own loopback address inside the namespace,
	// e.g. "127.0.1.1"; c2s listens on Addr:5222, s2s on Addr:5269.
	Addr  string
	Users map[string]string // localpart -> password

	// TLS is the certificate Prosody presents for Domain on c2s and s2s.
	// nil: StartProsody issues one from a CA of its own (Prosody.CA), which
	// no peer trusts, so s2s falls back to dialback.
	TLS *certtest.Pair
	// TrustCA, when set, is the only CA Prosody trusts for s2s peer
	// certificates (cafile); with it a peer's valid certificate allows SASL
	// EXTERNAL. nil: Debian's system CAs, which trust no test certificate.
	TrustCA *certtest.CA

	S2SSecureAuth     bool // s2s_secure_auth: require a valid certificate
	RequireEncryption bool // s2s_require_encryption: STARTTLS required on s2s
	NoS2STLS          bool // s2s_allow_encryption = false: no STARTTLS on s2s at all
	// DialbackOnly keeps SASL EXTERNAL out of s2s in both directions (a small
	// plugin written next to the config), so Server Dialback authenticates
	// even between valid certificates.
	DialbackOnly bool

	// Extra is Lua appended to the global section, for a test's own options.
	Extra string
}

// Prosody is a running instance.
type Prosody struct {
	Domain  string
	Addr    string
	C2SAddr string       // Addr:5222
	S2SAddr string       // Addr:5269
	CA      *certtest.CA // the CA of the certificate StartProsody issued; nil with ProsodyConfig.TLS
	Dir     string       // config, log and data; removed when the test ends
	LogPath string

	pid    int
	exited chan struct{}
}

// prosStopWait bounds the wait after SIGTERM before SIGKILL.
const prosStopWait = 5 * time.Second

// prosReadyWait bounds the wait for both listeners.
const prosReadyWait = 10 * time.Second

var prosDomainRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)

var prosLocalRe = regexp.MustCompile(`^[a-z0-9._-]+$`)

// StartProsody writes a configuration for cfg, registers its users, starts
// Prosody as user prosody in the test namespace and waits (10 s at most)
// until c2s and s2s accept connections. Prosody is stopped by PID when the
// test ends; if the test failed, the tail of its debug log is printed.
func StartProsody(t testing.TB, cfg ProsodyConfig) *Prosody {
	t.Helper()
	testenv.Netns(t)
	bin := testenv.Binary(t, "prosody")
	ctl := testenv.Binary(t, "prosodyctl")
	setpriv := testenv.Binary(t, "setpriv")
	if err := cfg.check(); err != nil {
		t.Fatalf("lab.StartProsody: %v", err)
	}
	for _, port := range []int{ProsodyC2SPort, ProsodyS2SPort} {
		addr := net.JoinHostPort(cfg.Addr, strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("lab.StartProsody %s: %s is taken (%v); is another test's Prosody on %s? "+
				"Call lab.DNS53 first (its lock serialises lab tests) or use another address", cfg.Domain, addr, err, cfg.Addr)
		}
		ln.Close()
	}
	uid, gid := prosUser(t)

	dir, err := os.MkdirTemp("", "xgw-prosody-"+cfg.Domain+"-")
	if err != nil {
		t.Fatal(err)
	}
	p := &Prosody{
		Domain:  cfg.Domain,
		Addr:    cfg.Addr,
		C2SAddr: net.JoinHostPort(cfg.Addr, strconv.Itoa(ProsodyC2SPort)),
		S2SAddr: net.JoinHostPort(cfg.Addr, strconv.Itoa(ProsodyS2SPort)),
		Dir:     dir,
		LogPath: filepath.Join(dir, "prosody.log"),
		exited:  make(chan struct{}),
	}
	started := false
	t.Cleanup(func() {
		if started {
			p.stop(t)
		}
		if t.Failed() {
			t.Logf("lab: Prosody %s (%s) log tail:\n%s", p.Domain, p.Addr, p.LogTail(80))
		}
		os.RemoveAll(dir)
	})

	pair := cfg.TLS
	if pair == nil {
		p.CA = certtest.NewCA(t, "lab CA for "+cfg.Domain)
		pair = p.CA.Issue(t, certtest.Leaf{CN: cfg.Domain, DNSNames: []string{cfg.Domain}, ECDSA: true})
	}
	certPath, keyPath, _ := pair.WriteFiles(t, dir, nil)
	caPath := ""
	if cfg.TrustCA != nil {
		caPath = filepath.Join(dir, "trust-ca.pem")
		prosWrite(t, caPath, cfg.TrustCA.CertPEM)
	}
	if cfg.DialbackOnly {
		os.Mkdir(filepath.Join(dir, "plugins"), 0o755)
		prosWrite(t, filepath.Join(dir, "plugins", "mod_lab_dialback_only.lua"), []byte(prosDialbackOnlyPlugin))
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o750); err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(dir, "prosody.cfg.lua")
	prosWrite(t, confPath, []byte(cfg.lua(dir, certPath, keyPath, caPath)))
	// Prosody runs unprivileged: it must own its directory, data and key.
	err = filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(path, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}

	users := make([]string, 0, len(cfg.Users))
	for u := range cfg.Users {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		out, err := exec.Command(ctl, "--config", confPath, "register", u, cfg.Domain, cfg.Users[u]).CombinedOutput()
		if err != nil {
			t.Fatalf("lab.StartProsody: prosodyctl register %s@%s: %v\n%s", u, cfg.Domain, err, out)
		}
	}

	var stderr bytes.Buffer
	cmd := exec.Command(setpriv, "--reuid=prosody", "--regid=prosody", "--init-groups", bin, "-F", "--config", confPath)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("lab.StartProsody: %v", err)
	}
	started = true
	p.pid = cmd.Process.Pid // setpriv execs prosody: same PID
	go func() {
		cmd.Wait()
		close(p.exited)
	}()

	deadline := time.Now().Add(prosReadyWait)
	for _, addr := range []string{p.C2SAddr, p.S2SAddr} {
		for {
			c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-p.exited:
				t.Fatalf("lab.StartProsody %s: prosody exited before listening on %s: %s\noutput: %s",
					cfg.Domain, addr, cmd.ProcessState, stderr.String())
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("lab.StartProsody %s: %s not accepting after %v: %v", cfg.Domain, addr, prosReadyWait, err)
			}
		}
	}
	return p
}

// stop ends the process this Prosody started: SIGTERM, then SIGKILL.
func (p *Prosody) stop(t testing.TB) {
	select {
	case <-p.exited:
		return
	default:
	}
	syscall.Kill(p.pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(prosStopWait):
		t.Logf("lab: Prosody %s (pid %d) ignored SIGTERM for %v; killing it", p.Domain, p.pid, prosStopWait)
		syscall.Kill(p.pid, syscall.SIGKILL)
		<-p.exited
	}
}

// Log returns Prosody's log so far.
func (p *Prosody) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// LogTail returns the last n lines of Prosody's log.
func (p *Prosody) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// JID returns user@domain.
func (p *Prosody) JID(user string) string { return user + "@" + p.Domain }

func (cfg ProsodyConfig) check() error {
	if !prosDomainRe.MatchString(cfg.Domain) {
		return fmt.Errorf("domain %q is not a lower-case DNS name with a dot (e.g. a.test)", cfg.Domain)
	}
	ip := net.ParseIP(cfg.Addr)
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return fmt.Errorf("addr %q for %s is not an IPv4 loopback address; use 127.x.y.z, e.g. 127.0.1.1", cfg.Addr, cfg.Domain)
	}
	for u := range cfg.Users {
		if !prosLocalRe.MatchString(u) {
			return fmt.Errorf("user %q of %s: use lower-case letters, digits and . _ - only", u, cfg.Domain)
		}
	}
	if cfg.NoS2STLS && (cfg.RequireEncryption || cfg.S2SSecureAuth) {
		return errors.New("NoS2STLS contradicts RequireEncryption/S2SSecureAuth: pick one")
	}
	return nil
}

// lua renders prosody.cfg.lua. Only the listed modules load (plus Prosody's
// autoloaded presence, message, iq, offline, c2s, s2s, s2s_auth_certs).
func (cfg ProsodyConfig) lua(dir, cert, key, ca string) string {
	q := prosLuaString
	var b strings.Builder
	fmt.Fprintf(&b, "-- written by xgw internal/lab for %s\n", cfg.Domain)
	fmt.Fprintf(&b, "data_path = %s\n", q(filepath.Join(dir, "data")))
	fmt.Fprintf(&b, "pidfile = %s\n", q(filepath.Join(dir, "prosody.pid")))
	// Without it Prosody logs an error about a missing certs/ directory.
	fmt.Fprintf(&b, "certificates = %s\n", q(dir))
	fmt.Fprintf(&b, "log = { { levels = { min = \"debug\" }, to = \"file\", filename = %s } }\n", q(filepath.Join(dir, "prosody.log")))
	fmt.Fprintf(&b, "interfaces = { %s }\n", q(cfg.Addr))
	fmt.Fprintf(&b, "c2s_ports = { %d }\ns2s_ports = { %d }\n", ProsodyC2SPort, ProsodyS2SPort)
	b.WriteString("c2s_direct_tls_ports = { }\ns2s_direct_tls_ports = { }\n")
	modules := []string{"roster", "saslauth", "tls", "dialback", "disco", "ping"}
	if cfg.DialbackOnly {
		fmt.Fprintf(&b, "plugin_paths = { %s }\n", q(filepath.Join(dir, "plugins")))
		modules = append(modules, "lab_dialback_only")
	}
	for i, m := range modules {
		modules[i] = q(m)
	}
	fmt.Fprintf(&b, "modules_enabled = { %s }\n", strings.Join(modules, ", "))
	b.WriteString("authentication = \"internal_hashed\"\nstorage = \"internal\"\n")
	b.WriteString("c2s_require_encryption = true\n")
	fmt.Fprintf(&b, "s2s_require_encryption = %t\n", cfg.RequireEncryption)
	fmt.Fprintf(&b, "s2s_secure_auth = %t\n", cfg.S2SSecureAuth)
	fmt.Fprintf(&b, "s2s_allow_encryption = %t\n", !cfg.NoS2STLS)
	// Fail fast: a lab peer that does not answer is a finding, not a wait.
	b.WriteString("s2s_timeout = 10\n")
	ssl := fmt.Sprintf("{ certificate = %s, key = %s", q(cert), q(key))
	if ca != "" {
		ssl += fmt.Sprintf(", cafile = %s", q(ca))
	}
	ssl += " }"
	fmt.Fprintf(&b, "ssl = %s\n", ssl)
	if cfg.Extra != "" {
		b.WriteString(cfg.Extra + "\n")
	}
	fmt.Fprintf(&b, "VirtualHost %s\n\tssl = %s\n", q(cfg.Domain), ssl)
	return b.String()
}

// prosDialbackOnlyPlugin removes SASL (EXTERNAL is the only s2s mechanism)
// from the s2s features Prosody offers, and from those it receives before
// mod_saslauth (priority 150) sees them: Prosody 0.12 tries EXTERNAL whenever
// it is offered and does not fall back to dialback when it fails.
const prosDialbackOnlyPlugin = `-- written by xgw internal/lab: Server Dialback only on s2s
local xmlns_sasl = "urn:ietf:params:xml:ns:xmpp-sasl";
local function no_sasl(tag)
	if tag.name == "mechanisms" and tag.attr.xmlns == xmlns_sasl then return nil; end
	return tag;
end
module:hook("s2s-stream-features", function(event)
	event.features:maptags(no_sasl);
end, -100);
module:hook_tag("http://etherx.jabber.org/streams", "features", function(session, features)
	if session.type == "s2sout_unauthed" then features:maptags(no_sasl); end
end, 200);
`

// prosLuaString quotes s as a Lua string literal.
func prosLuaString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func prosWrite(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o640); err != nil {
		t.Fatal(err)
	}
}

func prosUser(t testing.TB) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup("prosody")
	if err != nil {
		testenv.Missing(t, "user prosody (created by Debian's prosody package): %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}
