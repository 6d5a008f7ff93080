package lab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/internal/dnstest"
	"github.com/xgw-gateway/xgw/internal/testenv"
)

// DNSAddr is where the namespace's /etc/resolv.conf points (scripts/test.sh),
// so every daemon started in the namespace asks this server.
const DNSAddr = "127.0.0.53:53"

// Zone is zone-file text; $ORIGIN and relative names are allowed, Origin is
// the default origin.
type Zone struct {
	Origin string
	Text   string
}

// ServerZone is the zone of an XMPP domain served at ip: an A record for the
// domain and the SRV records _xmpp-server._tcp (5269) and _xmpp-client._tcp
// (5222) pointing at it, as a real deployment publishes them.
func ServerZone(domain, ip string) Zone {
	return Zone{Origin: domain, Text: fmt.Sprintf(`$ORIGIN %[1]s.
@                  60 IN A   %[2]s
_xmpp-server._tcp  60 IN SRV 0 5 5269 %[1]s.
_xmpp-client._tcp  60 IN SRV 0 5 5222 %[1]s.
`, domain, ip)}
}

// DNS53 starts the namespace's resolver: an authoritative server for zones on
// 127.0.0.53:53, stopped when the test ends. Unknown names get NXDOMAIN.
//
// Port 53 is one per namespace and `go test -p 2` runs two test binaries in
// the same namespace, so DNS53 first takes the lab lock (an exclusive flock
// under /run, named after the namespace) and holds it until the test ends.
// The lock also keeps the lab's fixed addresses (Prosody on 127.0.1.x:5222
// and :5269) to one test at a time: call DNS53 before StartProsody.
func DNS53(t testing.TB, zones ...Zone) *dnstest.Server {
	t.Helper()
	labLock(t, "dns53")
	first, rest := Zone{Origin: "test"}, zones
	if len(zones) > 0 {
		first, rest = zones[0], zones[1:]
	}
	labWaitPort53(t)
	s := dnstest.Start(t, DNSAddr, first.Origin, first.Text)
	for _, z := range rest {
		if err := s.Load(z.Origin, z.Text); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// labPortWait bounds the wait for port 53 once the lock is ours.
const labPortWait = 5 * time.Second

// labWaitPort53 waits until 127.0.0.53:53 can be bound. The lock is ours, so
// a holder is a socket the previous lab test closed that lives on briefly: a
// child process forked at that moment shares it until its exec.
func labWaitPort53(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(labPortWait)
	for busy := false; ; busy = true {
		pc, err := net.ListenPacket("udp", DNSAddr)
		if err == nil {
			pc.Close()
			return
		}
		if busy && time.Now().After(deadline) {
			t.Fatalf("lab.DNS53: %v for %v; sockets on port 53 in namespace %s:\n%s", err, labPortWait, testenv.Netns(t), labPort53Holders())
		}
		if !busy {
			t.Logf("lab.DNS53: %v; waiting. Sockets on port 53: %s", err, labPort53Holders())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func labPort53Holders() string {
	out, err := exec.Command("ss", "-Hanup", "sport = :53").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(ss: %v)", err)
	}
	return string(out)
}

// labLockWait bounds how long a test waits for another package's lab test.
const labLockWait = 5 * time.Minute

// labLock takes an exclusive flock on /run/xgw-lab-NETNS-NAME.lock, released
// at the end of the test. Locks are per open file, so two tests of the same
// binary exclude each other too.
func labLock(t testing.TB, name string) {
	t.Helper()
	ns := testenv.Netns(t)
	path := filepath.Join("/run", "xgw-lab-"+ns+"-"+name+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatalf("lab: open lock %s: %v", path, err)
	}
	wait := labLockWait
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok && time.Until(dl)-30*time.Second < wait {
			wait = max(time.Until(dl)-30*time.Second, time.Second)
		}
	}
	deadline := time.Now().Add(wait)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			t.Fatalf("lab: flock %s: %v", path, err)
		}
		if time.Now().After(deadline) {
			holder, _ := os.ReadFile(path)
			f.Close()
			t.Fatalf("lab: %s is still held after %v by %q; another test in namespace %s uses the lab "+
				"(port 53, fixed Prosody addresses). Make that test release it (end its test) or run fewer packages at once",
				path, wait, strings.TrimSpace(string(holder)), ns)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Say who holds it, for the message above in another process.
	f.Truncate(0)
	f.WriteAt([]byte(fmt.Sprintf("pid %d test %s\n", os.Getpid(), t.Name())), 0)
	t.Cleanup(func() {
		f.Truncate(0)
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}
