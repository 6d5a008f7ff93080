package checks

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/dnstest"
	"github.com/xgw-gateway/xgw/internal/resolve"
	"github.com/xgw-gateway/xgw/internal/testenv"
)

// hairpinLab is a NAT firewall between an inside network and a public one,
// built from three network namespaces this test creates:
//
//	IN (gateway)                 FW (firewall)                        OUT (a peer on the Internet)
//	hpin0 10.77.1.2/24 ---- hpfw0 10.77.1.1/24  hpfw1 192.0.2.32/24 ---- hpout0 192.0.2.100/24
//	default via 10.77.1.1        ip_forward=1, nftables DNAT 192.0.2.32:5269 -> 10.77.1.2:5269
//
// Without loopback NAT the DNAT applies only to packets arriving on the
// public side, so an inside client reaches the firewall itself. With it,
// inside packets are DNATed too and masqueraded, so the gateway's answer
// returns through the firewall instead of straight to itself.
type hairpinLab struct {
	in, fw, out string
}

const (
	hpPublicIP  = "192.0.2.32"
	hpGatewayIP = "10.77.1.2"
	hpListen    = hpGatewayIP + ":5269"
	// hpCmdWait bounds every ip/nft command and helper process.
	hpCmdWait = 20 * time.Second
)

func newHairpinLab(t *testing.T) *hairpinLab {
	t.Helper()
	testenv.Netns(t) // only inside scripts/test.sh's namespace, as root
	testenv.Binary(t, "ip")
	testenv.Binary(t, "nft")
	p := os.Getpid()
	l := &hairpinLab{in: fmt.Sprintf("xgwhp%d-in", p), fw: fmt.Sprintf("xgwhp%d-fw", p), out: fmt.Sprintf("xgwhp%d-out", p)}
	for _, ns := range []string{l.in, l.fw, l.out} {
		hpRun(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { hpDeleteNetns(t, ns) })
		hpRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	hpRun(t, "ip", "link", "add", "hpin0", "netns", l.in, "type", "veth", "peer", "name", "hpfw0", "netns", l.fw)
	hpRun(t, "ip", "link", "add", "hpout0", "netns", l.out, "type", "veth", "peer", "name", "hpfw1", "netns", l.fw)
	for _, a := range []struct{ ns, dev, addr string }{
		{l.in, "hpin0", hpGatewayIP + "/24"},
		{l.fw, "hpfw0", "10.77.1.1/24"},
		{l.fw, "hpfw1", hpPublicIP + "/24"},
		{l.out, "hpout0", "192.0.2.100/24"},
	} {
		hpRun(t, "ip", "-n", a.ns, "addr", "add", a.addr, "dev", a.dev)
		hpRun(t, "ip", "-n", a.ns, "link", "set", a.dev, "up")
	}
	hpRun(t, "ip", "-n", l.in, "route", "add", "default", "via", "10.77.1.1")
	hpRun(t, "ip", "netns", "exec", l.fw, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return l
}

// firewall replaces the firewall's ruleset. loopback adds NAT loopback;
// drop makes the firewall drop (not refuse) what reaches its own port 5269.
func (l *hairpinLab) firewall(t *testing.T, loopback, drop bool) {
	t.Helper()
	var b strings.Builder
	b.WriteString("flush ruleset\ntable ip xgwhp {\n")
	b.WriteString("\tchain pre {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n")
	if loopback {
		fmt.Fprintf(&b, "\t\tip daddr %s tcp dport 5269 dnat to %s\n", hpPublicIP, hpListen)
	} else {
		fmt.Fprintf(&b, "\t\tiifname \"hpfw1\" ip daddr %s tcp dport 5269 dnat to %s\n", hpPublicIP, hpListen)
	}
	b.WriteString("\t}\n\tchain post {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	if loopback {
		fmt.Fprintf(&b, "\t\tip saddr 10.77.1.0/24 ip daddr %s tcp dport 5269 masquerade\n", hpGatewayIP)
	}
	b.WriteString("\t}\n")
	if drop {
		b.WriteString("\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 5269 drop\n\t}\n")
	}
	b.WriteString("}\n")
	f := filepath.Join(t.TempDir(), "fw.nft")
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	hpRun(t, "ip", "netns", "exec", l.fw, "nft", "-f", f)
}

func hpRun(t *testing.T, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hpCmdWait)
	defer cancel()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// hpDeleteNetns stops what still runs in ns (only our helpers can) by PID,
// then deletes it; its veth ends go with it.
func hpDeleteNetns(t *testing.T, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), hpCmdWait)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "del", ns).CombinedOutput(); err != nil {
		t.Errorf("ip netns del %s: %v %s", ns, err, out)
	}
}

// hairpinJob is what the helper process does inside a namespace.
type hairpinJob struct {
	Listen, PublicIP, Internal, External string
	Zone                                 string        // zone text for litware.test (the internal name's A record)
	Hold                                 bool          // a stand-in for xgw serve holds Listen
	Serve                                bool          // only hold Listen until stdin closes
	Timeout                              time.Duration // the run's deadline
}

// hairpinOutcome is one Result as the helper reports it.
type hairpinOutcome struct {
	Status, Target, Found, Fix string
}

const hpResultPrefix = "hairpin-result: "

// runHelper runs job in namespace ns through a re-exec of this test
// binary, so this process never changes namespace.
func (l *hairpinLab) runHelper(t *testing.T, ns string, job hairpinJob) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(job)
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^TestHelperHairpin$", "-test.timeout=30s")
	cmd.Env = append(os.Environ(), "XGW_HAIRPIN_JOB="+string(spec))
	cmd.Stderr = os.Stderr
	return cmd
}

func (l *hairpinLab) check(t *testing.T, ns string, job hairpinJob) hairpinOutcome {
	t.Helper()
	cmd := l.runHelper(t, ns, job)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.Output(); close(done) }()
	select {
	case <-done:
	case <-time.After(hpCmdWait):
		cmd.Process.Kill()
		<-done
		t.Fatalf("helper in %s did not finish within %v", ns, hpCmdWait)
	}
	if err != nil {
		t.Fatalf("helper in %s: %v\n%s", ns, err, out)
	}
	for line := range strings.Lines(string(out)) {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), hpResultPrefix); ok {
			var o hairpinOutcome
			if err := json.Unmarshal([]byte(s), &o); err != nil {
				t.Fatal(err)
			}
			return o
		}
	}
	t.Fatalf("helper in %s printed no result:\n%s", ns, out)
	return hairpinOutcome{}
}

// serve holds xmpp.listen in the gateway namespace with an XMPP answer,
// as xgw serve would, until the test ends.
func (l *hairpinLab) serve(t *testing.T) {
	t.Helper()
	cmd := l.runHelper(t, l.in, hairpinJob{Listen: hpListen, Serve: true})
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "hairpin-serving" {
				ready <- true
			}
		}
		ready <- false
	}()
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		stdin.Close() // the helper stops when its stdin closes
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("serving helper exited before it listened")
		}
	case <-time.After(hpCmdWait):
		t.Fatal("serving helper did not start listening")
	}
}

func TestHairpin(t *testing.T) {
	l := newHairpinLab(t)
	const pub, ext, internal = hpPublicIP, "xmpp.litware.test", "xgw-int.litware.test"
	privZone := "xgw-int IN A " + hpGatewayIP + "\n"
	pubZone := "xgw-int IN A " + hpPublicIP + "\n"
	cases := []struct {
		name               string
		loopback, drop     bool
		job                hairpinJob
		status             string
		found, fix, notFix string
	}{
		{"loopback NAT, our probe listener answers", true, false,
			hairpinJob{Internal: internal, Zone: privZone}, "pass", "reached this gateway", "", ""},
		{"loopback NAT, port held by xgw serve", true, false,
			hairpinJob{Internal: internal, Zone: privZone, Hold: true}, "pass", "presumably by xgw serve", "", ""},
		{"no loopback NAT, Edge uses the internal name", false, false,
			hairpinJob{Internal: internal, Zone: privZone}, "warn", "refused", "cannot tell a missing port forward", ""},
		{"no loopback NAT, one FQDN for Edge and peers", false, false,
			hairpinJob{Internal: ext, Zone: privZone}, "fail", "internal_fqdn equals xmpp.external_fqdn", "enable NAT loopback", ""},
		{"no loopback NAT, firewall drops, internal name resolves to public_ip", false, true,
			hairpinJob{Internal: internal, Zone: pubZone}, "fail", "timed out", "enable NAT loopback", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l.firewall(t, tc.loopback, tc.drop)
			job := tc.job
			job.Listen, job.PublicIP, job.External, job.Timeout = hpListen, pub, ext, 1500*time.Millisecond
			got := l.check(t, l.in, job)
			t.Logf("%s %s: %s | fix: %s", got.Status, got.Target, got.Found, got.Fix)
			if got.Status != tc.status || !strings.Contains(got.Found, tc.found) || !strings.Contains(got.Fix, tc.fix) {
				t.Errorf("got %s %q (fix %q), want %s with %q (fix %q)", got.Status, got.Found, got.Fix, tc.status, tc.found, tc.fix)
			}
			if got.Target != pub+":5269" {
				t.Errorf("target %q, want %s:5269", got.Target, pub)
			}
		})
	}
	// The forward itself works from outside in the no-loopback setup: the
	// failures above are the missing loopback, not a missing forward.
	t.Run("no loopback NAT, reached from outside", func(t *testing.T) {
		l.firewall(t, false, false)
		l.serve(t)
		got := l.check(t, l.out, hairpinJob{Listen: hpListen, PublicIP: pub, Internal: internal, External: ext, Timeout: 1500 * time.Millisecond})
		t.Logf("%s %s: %s | fix: %s", got.Status, got.Target, got.Found, got.Fix)
		if !strings.Contains(got.Found, pub+":5269 answered with an XMPP stream") {
			t.Errorf("from outside got %s %q, want the gateway's XMPP answer through the DNAT", got.Status, got.Found)
		}
	})
}

func TestHairpinSkipsWithoutPublicIP(t *testing.T) {
	cfg := netConfig("xmpp.litware.test")
	got := Run(context.Background(), &Env{Config: cfg}, []Check{netHairpinCheck})
	if len(got) != 1 || got[0].Status != Skip || !strings.Contains(got[0].Found, "public_ip is not set") {
		t.Fatalf("got %+v, want one skip naming public_ip", got)
	}
}

// TestHelperHairpin is not a test: TestHairpin runs it in a namespace of
// its lab (see runHelper), where it runs net.hairpin and prints the result.
func TestHelperHairpin(t *testing.T) {
	spec := os.Getenv("XGW_HAIRPIN_JOB")
	if spec == "" {
		return // not started by TestHairpin (the os/exec helper-process idiom)
	}
	var job hairpinJob
	if err := json.Unmarshal([]byte(spec), &job); err != nil {
		t.Fatal(err)
	}
	if job.Serve || job.Hold {
		startFakePeer(t, job.Listen, xmppAnswer, "")
	}
	if job.Serve {
		fmt.Println("hairpin-serving")
		stdinClosed := make(chan struct{})
		go func() { io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
		select {
		case <-stdinClosed:
		case <-time.After(hpCmdWait):
		}
		return
	}
	dns := dnstest.Start(t, "127.0.0.1:0", "litware.test", job.Zone)
	cfg := &config.Config{
		SIP:  config.SIP{Domains: []string{"litware.test"}},
		XMPP: config.XMPP{Listen: job.Listen, InternalFQDN: job.Internal, ExternalFQDN: job.External, PublicIP: job.PublicIP, PrivateIP: hpGatewayIP},
	}
	ctx, cancel := context.WithTimeout(context.Background(), job.Timeout)
	defer cancel()
	res := Run(ctx, &Env{Config: cfg, Resolver: &resolve.Resolver{Servers: []string{dns.Addr}, Timeout: time.Second}}, []Check{netHairpinCheck})
	for _, r := range res {
		b, _ := json.Marshal(hairpinOutcome{Status: r.Status.String(), Target: r.Target, Found: r.Found, Fix: r.Fix})
		fmt.Println(hpResultPrefix + string(b))
	}
}
