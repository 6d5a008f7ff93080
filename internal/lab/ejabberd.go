package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/internal/certtest"
	"github.com/xgw-gateway/xgw/internal/testenv"
)

// ejabberd's ports in the lab, the standard ones on each instance's address.
const (
	EjabberdC2SPort = 5222
	EjabberdS2SPort = 5269
)

// EjabberdConfig describes one ejabberd instance (Debian's package) serving
// one domain.
type EjabberdConfig struct {
	Domain string // e.g. "e.test"
	// Addr is the instance's own loopback address inside the namespace;
	// c2s listens on Addr:5222, s2s on Addr:5269.
	Addr  string
	Users map[string]string // localpart -> password

	// TLS is the certificate ejabberd presents for Domain. nil: one from a
	// CA of its own (Ejabberd.CA) that no peer trusts, so s2s with a peer
	// that offers STARTTLS falls back from SASL EXTERNAL to dialback.
	TLS *certtest.Pair
	// TrustCA, when set, is the CA ejabberd trusts for s2s peer certificates
	// (s2s_cafile): a peer with a valid certificate from it authenticates by
	// SASL EXTERNAL. nil: no test certificate validates, so dialback.
	TrustCA *certtest.CA
	// NoS2STLS: s2s_use_starttls false instead of optional.
	NoS2STLS bool
}

// Ejabberd is a running instance.
type Ejabberd struct {
	Domain  string
	Addr    string
	C2SAddr string       // Addr:5222
	S2SAddr string       // Addr:5269
	CA      *certtest.CA // the CA of the certificate StartEjabberd issued; nil with EjabberdConfig.TLS
	Dir     string       // config, spool and log; removed when the test ends
	LogPath string
	// StartTime is how long ejabberd took until c2s and s2s accepted.
	StartTime time.Duration

	ctl     string // ejabberdctl
	setpriv string
	ctlArgs []string // the --config ... options every ejabberdctl call gets
	env     []string
	pid     int
	exited  chan struct{}
}

const (
	// ejReadyWait bounds the start: the Erlang VM, Mnesia and the
	// listeners take a few seconds on a loaded 2-core machine.
	ejReadyWait = 60 * time.Second
	// ejStopWait bounds the graceful stop (SIGTERM -> init:stop) before SIGKILL.
	ejStopWait = 10 * time.Second
	// ejCtlWait bounds one ejabberdctl call (it boots an Erlang VM of its own).
	ejCtlWait = 30 * time.Second
)

// StartEjabberd writes ejabberd.yml and an ejabberdctl.cfg of its own for
// cfg, runs `ejabberdctl foreground` as user ejabberd in the test namespace,
// waits (60 s at most) until c2s and s2s accept, then registers the users.
//
// Debian's /etc/ejabberd is not used at all: --config-dir points at the
// instance's directory, so neither the packaged ejabberdctl.cfg nor its
// inetrc apply. The Erlang node has a unique short name and listens for
// distribution on a free port of 127.0.0.1 (ERL_DIST_PORT), so no epmd is
// started or asked. ejabberd and every process under it are stopped by PID
// when the test ends; if the test failed, the tail of its log is printed.
func StartEjabberd(t testing.TB, cfg EjabberdConfig) *Ejabberd {
	t.Helper()
	testenv.Netns(t)
	ctl := testenv.Binary(t, "ejabberdctl")
	setpriv := testenv.Binary(t, "setpriv")
	if err := (ProsodyConfig{Domain: cfg.Domain, Addr: cfg.Addr, Users: cfg.Users}).check(); err != nil {
		t.Fatalf("lab.StartEjabberd: %v", err)
	}
	for _, port := range []int{EjabberdC2SPort, EjabberdS2SPort} {
		addr := net.JoinHostPort(cfg.Addr, strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("lab.StartEjabberd %s: %s is taken (%v); call lab.DNS53 first (its lock serialises lab tests) or use another address",
				cfg.Domain, addr, err)
		}
		ln.Close()
	}
	uid, gid := ejUser(t)
	distPort := ejFreePort(t)

	// Not t.TempDir: its parent is 0700 root, which user ejabberd cannot enter.
	dir, err := os.MkdirTemp("", "xgw-ejabberd-"+cfg.Domain+"-")
	if err != nil {
		t.Fatal(err)
	}
	e := &Ejabberd{
		Domain:  cfg.Domain,
		Addr:    cfg.Addr,
		C2SAddr: net.JoinHostPort(cfg.Addr, strconv.Itoa(EjabberdC2SPort)),
		S2SAddr: net.JoinHostPort(cfg.Addr, strconv.Itoa(EjabberdS2SPort)),
		Dir:     dir,
		LogPath: filepath.Join(dir, "log", "ejabberd.log"),
		ctl:     ctl,
		setpriv: setpriv,
		exited:  make(chan struct{}),
	}
	started := false
	t.Cleanup(func() {
		if started {
			e.stop(t)
		}
		if t.Failed() {
			t.Logf("lab: ejabberd %s (%s) log tail:\n%s", e.Domain, e.Addr, e.LogTail(80))
		}
		os.RemoveAll(dir)
	})

	pair := cfg.TLS
	if pair == nil {
		e.CA = certtest.NewCA(t, "lab CA for "+cfg.Domain)
		pair = e.CA.Issue(t, certtest.Leaf{CN: cfg.Domain, DNSNames: []string{cfg.Domain}, ECDSA: true})
	}
	// certfiles: one PEM with the chain and the key.
	certPath := filepath.Join(dir, "cert.pem")
	prosWrite(t, certPath, append(append([]byte{}, pair.CertPEM...), pair.KeyPEM...))
	for _, sub := range []string{"spool", "log"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	// Debian's system CAs, unless the test names its own.
	caPath := "/etc/ssl/certs/ca-certificates.crt"
	if cfg.TrustCA != nil {
		caPath = filepath.Join(dir, "trust-ca.pem")
		prosWrite(t, caPath, cfg.TrustCA.CertPEM)
	}
	ymlPath := filepath.Join(dir, "ejabberd.yml")
	prosWrite(t, ymlPath, []byte(cfg.yml(certPath, caPath)))
	// Node name: no dot, or ejabberdctl switches to -name (long names).
	node := fmt.Sprintf("xgwlab%d_%d@localhost", os.Getpid(), distPort)
	ctlCfg := filepath.Join(dir, "ejabberdctl.cfg")
	prosWrite(t, ctlCfg, []byte(fmt.Sprintf(`# written by xgw internal/lab for %s
ERLANG_NODE=%s
ERL_DIST_PORT=%d
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 -kernel inet_dist_use_interface {127,0,0,1}"
EJABBERD_PID_PATH=%s
`, cfg.Domain, node, distPort, filepath.Join(dir, "ejabberd.pid"))))
	// Our own inetrc: hosts file, then the system resolver; inet_res (SRV)
	// reads the namespace's resolv.conf.
	prosWrite(t, filepath.Join(dir, "inetrc"), []byte("{lookup,[file,native]}.\n{file,resolv,\"/etc/resolv.conf\"}.\n"))
	// The Erlang cookie lives in $HOME: give the node and the ejabberdctl
	// calls one of their own.
	cookie := filepath.Join(dir, ".erlang.cookie")
	if err := os.WriteFile(cookie, []byte(fmt.Sprintf("xgwlab%d%d", os.Getpid(), time.Now().UnixNano())), 0o400); err != nil {
		t.Fatal(err)
	}
	err = filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(path, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
	e.ctlArgs = []string{"--config-dir", dir, "--config", ymlPath, "--ctl-config", ctlCfg,
		"--logs", filepath.Join(dir, "log"), "--spool", filepath.Join(dir, "spool")}
	e.env = []string{"HOME=" + dir, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}

	var out bytes.Buffer
	cmd := e.command("foreground")
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so the SIGKILL fallback reaches the whole tree.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("lab.StartEjabberd: %v", err)
	}
	started = true
	e.pid = cmd.Process.Pid
	go func() {
		cmd.Wait()
		close(e.exited)
	}()

	deadline := begin.Add(ejReadyWait)
	for _, addr := range []string{e.C2SAddr, e.S2SAddr} {
		for {
			c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-e.exited:
				t.Fatalf("lab.StartEjabberd %s: ejabberd exited before listening on %s: %s\noutput: %s",
					cfg.Domain, addr, cmd.ProcessState, out.String())
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("lab.StartEjabberd %s: %s not accepting after %v: %v", cfg.Domain, addr, ejReadyWait, err)
			}
		}
	}
	e.StartTime = time.Since(begin)
	t.Logf("lab: ejabberd %s accepting on %s and %s after %v", cfg.Domain, e.C2SAddr, e.S2SAddr, e.StartTime.Round(time.Millisecond))

	users := make([]string, 0, len(cfg.Users))
	for u := range cfg.Users {
		users = append(users, u)
	}
	sort.Strings(users)
	// A fresh spool: register runs once per user (it is not idempotent).
	begin = time.Now()
	for _, u := range users {
		if out, err := e.run("register", u, cfg.Domain, cfg.Users[u]); err != nil {
			t.Fatalf("lab.StartEjabberd: ejabberdctl register %s@%s: %v\n%s", u, cfg.Domain, err, out)
		}
	}
	if len(users) > 0 {
		t.Logf("lab: ejabberd %s: %d users registered in %v", cfg.Domain, len(users), time.Since(begin).Round(time.Millisecond))
	}
	return e
}

// command is ejabberdctl with the instance's options, run as user ejabberd
// (ejabberdctl would otherwise su to it from root, in a child we cannot
// follow as easily).
func (e *Ejabberd) command(args ...string) *exec.Cmd {
	full := append([]string{"--reuid=ejabberd", "--regid=ejabberd", "--init-groups", e.ctl}, e.ctlArgs...)
	cmd := exec.Command(e.setpriv, append(full, args...)...)
	cmd.Dir = e.Dir
	cmd.Env = e.env
	return cmd
}

// run is one ejabberdctl command against the running node, bounded by ejCtlWait.
func (e *Ejabberd) run(args ...string) ([]byte, error) {
	var out bytes.Buffer
	cmd := e.command(args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-time.After(ejCtlWait):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.Bytes(), fmt.Errorf("no answer after %v", ejCtlWait)
	}
}

// stop sends SIGTERM to the Erlang VM, the child of the ejabberdctl script
// StartEjabberd started (the VM turns it into init:stop and ends its own
// helpers; the script is spared so it does not orphan the VM), then SIGKILL
// to the process group and the whole tree, for whatever is left after
// ejStopWait.
func (e *Ejabberd) stop(t testing.TB) {
	select {
	case <-e.exited:
		return
	default:
	}
	begin := time.Now()
	defer func() { t.Logf("lab: ejabberd %s stopped in %v", e.Domain, time.Since(begin).Round(time.Millisecond)) }()
	tree := ejProcTree(e.pid)
	for _, pid := range ejChildren(e.pid) {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	select {
	case <-e.exited:
	case <-time.After(ejStopWait):
		t.Logf("lab: ejabberd %s (pid %d) ignored SIGTERM for %v; killing its processes", e.Domain, e.pid, ejStopWait)
	}
	// The group is ours (Setpgid) and the tree is what the root started:
	// nothing of them may outlive the test, e.g. a lingering inet_gethost.
	syscall.Kill(-e.pid, syscall.SIGKILL)
	for _, pid := range tree {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	<-e.exited
}

// ejProcTree returns root and its descendants, from /proc's parent links.
func ejProcTree(root int) []int {
	children := ejParents()
	tree := []int{root}
	for i := 0; i < len(tree) && i < 1000; i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// ejChildren returns the direct children of pid.
func ejChildren(pid int) []int { return ejParents()[pid] }

// ejParents maps each PID in /proc to its children.
func ejParents() map[int][]int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	return children
}

// Log returns ejabberd's log so far.
func (e *Ejabberd) Log() string {
	b, _ := os.ReadFile(e.LogPath)
	return string(b)
}

// LogTail returns the last n lines of ejabberd's log.
func (e *Ejabberd) LogTail(n int) string {
	lines := strings.Split(strings.TrimRight(e.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitLog waits until ejabberd's log holds substr at least n times.
func (e *Ejabberd) WaitLog(ctx context.Context, substr string, n int) error {
	for {
		got := strings.Count(e.Log(), substr)
		if got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ejabberd %s: log holds %q %d times, want %d: %w", e.Domain, substr, got, n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// JID returns user@domain.
func (e *Ejabberd) JID(user string) string { return user + "@" + e.Domain }

// yml renders ejabberd.yml: one host, c2s and s2s on Addr only, dialback,
// and only the modules the lab needs. YAML strings are JSON-quoted.
func (cfg EjabberdConfig) yml(cert, ca string) string {
	q := strconv.Quote
	starttls := "optional"
	if cfg.NoS2STLS {
		starttls = "false"
	}
	return fmt.Sprintf(`# written by xgw internal/lab for %[1]s
hosts: [%[2]s]
loglevel: debug
certfiles: [%[3]s]
s2s_cafile: %[8]s
auth_method: internal
s2s_use_starttls: %[4]s
# The lab's DNS serves A records only; fail fast on a silent peer.
outgoing_s2s_families: [ipv4]
s2s_dns_timeout: 5 s
outgoing_s2s_timeout: 10 s
listen:
  - port: %[6]d
    ip: %[5]s
    module: ejabberd_c2s
    starttls_required: true
  - port: %[7]d
    ip: %[5]s
    module: ejabberd_s2s_in
modules:
  mod_s2s_dialback: {}
  mod_ping: {}
  mod_disco: {}
  mod_roster: {}
`, cfg.Domain, q(cfg.Domain), q(cert), starttls, q(cfg.Addr), EjabberdC2SPort, EjabberdS2SPort, q(ca))
}

// ejFreePort is a TCP port of 127.0.0.1 free at the time of asking, for
// Erlang distribution (no epmd).
func ejFreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func ejUser(t testing.TB) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup("ejabberd")
	if err != nil {
		testenv.Missing(t, "user ejabberd (created by Debian's ejabberd package): %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}
