package checks

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/dnstest"
	"github.com/xgw-gateway/xgw/internal/resolve"
)

// The DNS probes run against a real authoritative server (dnstest) on
// loopback, one zone file per pitfall in testdata/zones/.

const (
	litware = "litware.test"
	college = "college.litware.test"
	extFQDN = "xmpp.litware.test"
	intFQDN = "xgw-int.litware.test"
)

var dnsChecks = []Check{dnsSRVCheck, dnsACheck, dnsInternalCheck, hostsEntryCheck}

func dnsConfig(hostsFile string, mod func(c *config.Config)) *config.Config {
	c := &config.Config{
		SIP: config.SIP{Domains: []string{litware, college}, Listen: "192.0.2.20:5061",
			Edge: config.Edge{Host: "edge.litware.test", Port: 5061, Transport: "tls"}},
		XMPP: config.XMPP{Listen: "192.0.2.20:5269", InternalFQDN: intFQDN, ExternalFQDN: extFQDN,
			PublicIP: "203.0.113.32", PrivateIP: "192.0.2.20"},
		Checks: config.Checks{HostsFile: filepath.Join("..", "testdata", "hosts", hostsFile), Timeout: config.Duration(5 * time.Second)},
	}
	if mod != nil {
		mod(c)
	}
	return c
}

// startZone serves testdata/zones/<file> and returns a resolver asking it.
func startZone(t testing.TB, file string) *resolve.Resolver {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "zones", file))
	if err != nil {
		t.Fatal(err)
	}
	srv := dnstest.Start(t, "127.0.0.1:0", litware, string(data))
	r, err := resolve.New(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type dnsWant struct {
	id, target string
	status     Status
	says       []string // substrings of Found, Expected or Fix
}

func checkDNSResults(t *testing.T, got []Result, wants []dnsWant) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("got %d results, want %d:\n%s", len(got), len(wants), dumpResults(got))
	}
	for i, w := range wants {
		g := got[i]
		if g.ID != w.id || g.Target != w.target || g.Status != w.status {
			t.Errorf("result %d = %s %s %s, want %s %s %s\n  found: %s\n  fix:   %s", i, g.ID, g.Target, g.Status, w.id, w.target, w.status, g.Found, g.Fix)
			continue
		}
		text := g.Found + "\n" + g.Expected + "\n" + g.Fix
		for _, s := range w.says {
			if !strings.Contains(text, s) {
				t.Errorf("%s %s: want %q in\n%s", g.ID, g.Target, s, text)
			}
		}
		if g.Found == "" {
			t.Errorf("%s %s: empty found", g.ID, g.Target)
		}
		if (g.Status == Fail || g.Status == Warn) && (g.Expected == "" || g.Fix == "") {
			t.Errorf("%s %s is %s without expected or fix: %+v", g.ID, g.Target, g.Status, g)
		}
	}
}

func dumpResults(rs []Result) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString("  " + r.ID + " " + r.Target + " " + r.Status.String() + ": " + r.Found + "\n")
	}
	return b.String()
}

func TestDNSProbes(t *testing.T) {
	const (
		srvLine = "_xmpp-server._tcp.litware.test.\t3600\tIN\tSRV\t0 5 5269 xmpp.litware.test."
		aLine   = "xmpp.litware.test.\t3600\tIN\tA\t203.0.113.32"
		intLine = "xgw-int.litware.test.\t3600\tIN\tA\t192.0.2.20"
		hosts   = "192.0.2.20 xgw-int.litware.test"
	)
	srvOK := []dnsWant{{"dns.srv", litware, Pass, nil}, {"dns.srv", college, Pass, nil}}
	aOK := dnsWant{"dns.a", extFQDN, Pass, []string{"→ 203.0.113.32"}}
	intOK := dnsWant{"dns.internal", intFQDN, Pass, []string{"via DNS"}}
	notNeeded := dnsWant{"hosts.entry", intFQDN, Pass, []string{"not needed: DNS answers"}}
	with := func(ws ...[]dnsWant) []dnsWant {
		var out []dnsWant
		for _, w := range ws {
			out = append(out, w...)
		}
		return out
	}
	one := func(ws ...dnsWant) []dnsWant { return ws }

	tests := []struct {
		name  string
		zone  string
		hosts string
		mod   func(*config.Config)
		want  []dnsWant
	}{
		{"healthy, hosts file has the line too", "healthy.zone", "unix.hosts", nil, with(srvOK, one(aOK, intOK,
			dnsWant{"hosts.entry", intFQDN, Pass, []string{"unix.hosts line 8 maps xgw-int.litware.test to 192.0.2.20", "Edge"}}))},
		{"healthy, hosts file without the line", "healthy.zone", "missing.hosts", nil, with(srvOK, one(aOK, intOK, notNeeded))},
		{"healthy, no hosts file", "healthy.zone", "absent.hosts", nil, with(srvOK, one(aOK, intOK,
			dnsWant{"hosts.entry", intFQDN, Pass, []string{"not needed", "does not exist"}}))},
		{"healthy DNS, hosts file overrides it wrongly", "healthy.zone", "wrong.hosts", nil, with(srvOK, one(aOK, intOK,
			dnsWant{"hosts.entry", intFQDN, Fail, []string{"wrong.hosts line 4 maps xgw-int.litware.test to 192.0.2.99", "change line 4 to: " + hosts, "Edge server's hosts file"}}))},

		{"SRV missing: NXDOMAIN and NODATA", "srv-missing.zone", "missing.hosts", nil, with(one(
			dnsWant{"dns.srv", litware, Fail, []string{"no SRV record", "NXDOMAIN", "add to the public DNS zone of litware.test: " + srvLine}},
			dnsWant{"dns.srv", college, Fail, []string{"NODATA", "_xmpp-server._tcp.college.litware.test.\t3600\tIN\tSRV\t0 5 5269 xmpp.litware.test."}},
			aOK, intOK, notNeeded))},
		{"SRV made for the server's domain, not the SIP domain", "srv-server-domain.zone", "missing.hosts",
			func(c *config.Config) { c.SIP.Domains = []string{"school.test"} }, one(
				dnsWant{"dns.srv", "school.test", Fail, []string{"NXDOMAIN", "_xmpp-server._tcp.litware.test exists, but that is the gateway's own domain", "_xmpp-server._tcp.school.test.\t3600\tIN\tSRV\t0 5 5269 xmpp.litware.test."}},
				aOK, intOK, notNeeded)},
		{"second SIP domain without its own SRV", "srv-second-domain.zone", "missing.hosts", nil, one(
			dnsWant{"dns.srv", litware, Pass, nil},
			dnsWant{"dns.srv", college, Fail, []string{"NXDOMAIN", "litware.test has its record but every SIP domain needs its own"}},
			aOK, intOK, notNeeded)},
		{"SRV on the client port", "srv-wrong-port.zone", "missing.hosts", nil, one(
			dnsWant{"dns.srv", litware, Fail, []string{"port 5222", "client port", "set the port to 5269", srvLine}},
			dnsWant{"dns.srv", college, Pass, nil},
			aOK, intOK, notNeeded)},
		{"SRV to the internal FQDN and to the domain itself", "srv-wrong-target.zone", "missing.hosts", nil, one(
			dnsWant{"dns.srv", litware, Fail, []string{"0 5 5269 xgw-int.litware.test.", "internal FQDN", "replace the record(s) at _xmpp-server._tcp.litware.test with: " + srvLine}},
			dnsWant{"dns.srv", college, Fail, []string{"SIP domain itself"}},
			aOK, intOK, notNeeded)},
		{"SRV with the lone dot target", "srv-dot-target.zone", "missing.hosts", nil, one(
			dnsWant{"dns.srv", litware, Fail, []string{`lone "."`, "explicitly not offered", srvLine}},
			dnsWant{"dns.srv", college, Pass, nil},
			aOK, intOK, notNeeded)},
		{"SRV to localhost", "srv-localhost.zone", "missing.hosts", nil, one(
			dnsWant{"dns.srv", litware, Fail, []string{"target localhost", srvLine}},
			dnsWant{"dns.srv", college, Pass, nil},
			aOK, intOK, notNeeded)},
		{"SRV priority and weight", "srv-priority.zone", "missing.hosts",
			func(c *config.Config) { c.SIP.Domains = append(c.SIP.Domains, "staff.litware.test") }, one(
				dnsWant{"dns.srv", litware, Pass, []string{"10 60 5269 xmpp.litware.test.; 20 0 5269 backup.litware.test."}},
				dnsWant{"dns.srv", college, Warn, []string{"shares priority 10", "about 25% of the peers", "old-ocs.litware.test."}},
				dnsWant{"dns.srv", "staff.litware.test", Warn, []string{"only a backup (priority 20)", "old-ocs.litware.test. first (priority 10)", "lowest priority"}},
				aOK, intOK, notNeeded)},
		{"direct-TLS SRV on the STARTTLS port", "srv-xmpps-starttls-port.zone", "missing.hosts", nil, one(
			dnsWant{"dns.srv", litware, Warn, []string{"_xmpps-server._tcp.litware.test SRV 0 5 5269 xmpp.litware.test.", "STARTTLS port", "remove the _xmpps-server._tcp.litware.test record"}},
			dnsWant{"dns.srv", college, Pass, nil},
			aOK, intOK, notNeeded)},
		{"SRV answer truncated over UDP, complete over TCP", "srv-truncated.zone", "missing.hosts", nil, one(
			dnsWant{"dns.srv", litware, Pass, []string{"0 5 5269 xmpp.litware.test.; 10 1 5269 backup-01.farm.litware.test.", "backup-60.farm"}},
			dnsWant{"dns.srv", college, Pass, nil},
			aOK, intOK, notNeeded)},

		{"A record missing", "a-missing.zone", "missing.hosts", nil, with(srvOK, one(
			dnsWant{"dns.a", extFQDN, Fail, []string{"no A or AAAA record", "NODATA", "add to the public DNS zone: " + aLine}},
			intOK, notNeeded))},
		{"A record with the wrong address", "a-wrong.zone", "missing.hosts", nil, with(srvOK, one(
			dnsWant{"dns.a", extFQDN, Fail, []string{"xmpp.litware.test → 203.0.113.99", "203.0.113.32 (xmpp.public_ip)", aLine}},
			intOK, notNeeded))},
		{"A records include a private address", "a-private.zone", "missing.hosts", nil, with(srvOK, one(
			dnsWant{"dns.a", extFQDN, Warn, []string{"10.1.2.3 is private", "remove those addresses' records"}},
			intOK, notNeeded))},
		{"A records include another host's address", "a-extra.zone", "missing.hosts", nil, with(srvOK, one(
			dnsWant{"dns.a", extFQDN, Warn, []string{"203.0.113.32, 198.18.0.7, 2001:2::32; 198.18.0.7 is not xmpp.public_ip"}},
			intOK, notNeeded))},
		{"dual stack: the other family is shown, not judged", "a-dual-stack.zone", "missing.hosts", nil, with(srvOK, one(
			dnsWant{"dns.a", extFQDN, Pass, []string{"→ 203.0.113.32, 2001:2::32"}},
			intOK, notNeeded))},
		{"loopback lab is all green", "lab-loopback.zone", "missing.hosts",
			func(c *config.Config) { c.XMPP.PublicIP, c.XMPP.PrivateIP = "127.0.0.1", "127.0.0.1" }, with(srvOK, one(
				dnsWant{"dns.a", extFQDN, Pass, []string{"→ 127.0.0.1", "itself loopback: fine for a lab"}},
				intOK, notNeeded))},

		{"internal name only in the Unix hosts file", "internal-missing.zone", "unix.hosts", nil, with(srvOK, one(aOK,
			dnsWant{"dns.internal", intFQDN, Pass, []string{"via hosts file", "unix.hosts line 8", "NXDOMAIN"}},
			dnsWant{"hosts.entry", intFQDN, Pass, []string{"line 8 maps"}}))},
		{"internal name only in the Windows hosts file", "internal-missing.zone", "windows.hosts", nil, with(srvOK, one(aOK,
			dnsWant{"dns.internal", intFQDN, Pass, []string{"via hosts file", "windows.hosts line 10"}},
			dnsWant{"hosts.entry", intFQDN, Pass, []string{"windows.hosts line 10 maps xgw-int.litware.test to 192.0.2.20"}}))},
		{"internal name nowhere", "internal-missing.zone", "missing.hosts", nil, with(srvOK, one(aOK,
			dnsWant{"dns.internal", intFQDN, Fail, []string{"no DNS record", "NXDOMAIN", "has no entry", intLine, hosts}},
			dnsWant{"hosts.entry", intFQDN, Fail, []string{"no entry for xgw-int.litware.test", "DNS gives no address", "add this line at the end of the Edge server's hosts file", `%windir%\system32\drivers\etc\hosts`, hosts}}))},
		{"internal name wrong in the hosts file, absent from DNS", "internal-missing.zone", "wrong.hosts", nil, with(srvOK, one(aOK,
			dnsWant{"dns.internal", intFQDN, Fail, []string{"no DNS record", "line 4 maps it to 192.0.2.99"}},
			dnsWant{"hosts.entry", intFQDN, Fail, []string{"line 4 maps xgw-int.litware.test to 192.0.2.99"}}))},
		{"internal name with a second address in DNS", "internal-two.zone", "missing.hosts", nil, with(srvOK, one(aOK,
			dnsWant{"dns.internal", intFQDN, Warn, []string{"DNS maps xgw-int.litware.test to 192.0.2.20, 192.0.2.21", "keep only this record for xgw-int.litware.test: " + intLine}},
			notNeeded))},
		{"internal name wrong in DNS", "internal-wrong.zone", "missing.hosts", nil, with(srvOK, one(aOK,
			dnsWant{"dns.internal", intFQDN, Fail, []string{"DNS maps xgw-int.litware.test to 192.0.2.99", intLine}},
			dnsWant{"hosts.entry", intFQDN, Fail, []string{"DNS maps it to 192.0.2.99", hosts}}))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := &Env{Config: dnsConfig(tt.hosts, tt.mod), Resolver: startZone(t, tt.zone)}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			checkDNSResults(t, Run(ctx, env, dnsChecks), tt.want)
		})
	}
}

// A DNS server that never answers must not hang the probes: each ends at
// the ctx deadline with a fail that names the server asked, unless the
// hosts file alone maps the internal FQDN.
func TestDNSProbesBlackHole(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() }) // not defer: the parallel subtests run after this function returns
	server := pc.LocalAddr().String()
	noAnswer := "no answer from " + server
	srvFail := []dnsWant{
		{"dns.srv", litware, Fail, []string{noAnswer, "make sure " + server + " is reachable"}},
		{"dns.srv", college, Fail, []string{noAnswer}},
		{"dns.a", extFQDN, Fail, []string{noAnswer, "i/o timeout"}}, // a timeout, not a refusal
	}
	tests := []struct {
		hosts string
		want  []dnsWant
	}{
		{"missing.hosts", slices.Concat(srvFail, []dnsWant{
			{"dns.internal", intFQDN, Fail, []string{noAnswer, "missing.hosts has no entry"}},
			{"hosts.entry", intFQDN, Fail, []string{noAnswer, "192.0.2.20 xgw-int.litware.test"}}})},
		{"unix.hosts", slices.Concat(srvFail, []dnsWant{
			{"dns.internal", intFQDN, Warn, []string{"via hosts file", "unix.hosts line 8", "DNS gave no answer", noAnswer}},
			{"hosts.entry", intFQDN, Pass, []string{"line 8 maps"}}})},
	}
	for _, tt := range tests {
		t.Run(tt.hosts, func(t *testing.T) {
			t.Parallel()
			r, err := resolve.New(server)
			if err != nil {
				t.Fatal(err)
			}
			env := &Env{Config: dnsConfig(tt.hosts, nil), Resolver: r}
			const deadline = 300 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			got := Run(ctx, env, dnsChecks)
			if took := time.Since(start); took > deadline+500*time.Millisecond {
				t.Errorf("probes took %v against a black hole, want at most the %v deadline + 0.5 s", took, deadline)
			}
			checkDNSResults(t, got, tt.want)
		})
	}
}

// BenchmarkDNSProbesHealthy measures the four probes against a healthy zone
// on loopback: the DNS share of a full `xgw check` run.
func BenchmarkDNSProbesHealthy(b *testing.B) {
	r := startZone(b, "healthy.zone")
	env := &Env{Config: dnsConfig("unix.hosts", nil), Resolver: r}
	ctx := context.Background()
	for b.Loop() {
		for _, res := range Run(ctx, env, dnsChecks) {
			if res.Status != Pass {
				b.Fatalf("%s %s: %s %s", res.ID, res.Target, res.Status, res.Found)
			}
		}
	}
}
