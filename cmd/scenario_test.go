package cmd

// End-to-end scenarios of `xgw check`: a healthy loopback deployment built
// inside the test namespace (in-process authoritative DNS, certificates from
// a test CA, a hosts file, a real Kamailio as the Edge requiring client
// certificates), then one small mutation of it per pitfall of the seed
// article and its comments. Each scenario runs the real command through
// run() and pins the exit code and exactly which (id, target) pairs fail,
// warn and skip; everything else must pass.

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/xgw-gateway/xgw/internal/certtest"
	"github.com/xgw-gateway/xgw/internal/dnstest"
	"github.com/xgw-gateway/xgw/internal/lab"
	"github.com/xgw-gateway/xgw/internal/testenv"
	"github.com/xgw-gateway/xgw/report"
)

// The lab's addresses: the whole 127.0.0.0/8 belongs to the test namespace.
const (
	gatewayIP  = "127.88.0.1" // xmpp.listen, sip.listen, public_ip and private_ip
	edgeIP     = "127.88.0.2" // Kamailio playing the Edge, on :5061
	edgeDownIP = "127.88.0.3" // nothing listens here
	// notLocalIP is an address of no interface in the namespace: the OCS
	// gateway's SipIP/XmppIP copied from another server.
	notLocalIP = "192.0.2.20"
)

// labParams fill the templates of testdata/scenarios/; a scenario that
// changes a name or address changes it everywhere at once (zone, config,
// certificate and hosts file), as an admin who chose it would.
type labParams struct {
	Domains             []string
	Internal, External  string
	ListenIP            string
	PublicIP, PrivateIP string
	EdgeHost, EdgeIP    string
}

func healthyParams() labParams {
	return labParams{
		Domains:  []string{"school.test", "college.test"},
		Internal: "xgw-int.litware.test", External: "xmpp.litware.test",
		ListenIP: gatewayIP, PublicIP: gatewayIP, PrivateIP: gatewayIP,
		EdgeHost: "edge.litware.test", EdgeIP: edgeIP,
	}
}

var scenarioTemplates = template.Must(template.New("").Funcs(template.FuncMap{"join": strings.Join}).
	ParseGlob(filepath.Join("..", "testdata", "scenarios", "*.tmpl")))

func execTemplate(tb testing.TB, name string, p labParams) string {
	tb.Helper()
	var b strings.Builder
	if err := scenarioTemplates.ExecuteTemplate(&b, name, p); err != nil {
		tb.Fatal(err)
	}
	return b.String()
}

// edit changes one rendered file; it fails the test when the text it
// changes is not there, so a mutation cannot silently become a no-op.
type edit func(tb testing.TB, text string) string

// dropLines removes every line containing s.
func dropLines(s string) edit {
	return func(tb testing.TB, text string) string {
		tb.Helper()
		lines := strings.SplitAfter(text, "\n")
		kept := slices.DeleteFunc(slices.Clone(lines), func(l string) bool { return strings.Contains(l, s) })
		if len(kept) == len(lines) {
			tb.Fatalf("scenario edit: no line contains %q in:\n%s", s, text)
		}
		return strings.Join(kept, "")
	}
}

// replace replaces old, which must occur, with new.
func replace(old, new string) edit {
	return func(tb testing.TB, text string) string {
		tb.Helper()
		if !strings.Contains(text, old) {
			tb.Fatalf("scenario edit: %q not found in:\n%s", old, text)
		}
		return strings.ReplaceAll(text, old, new)
	}
}

// ourIssuer is who issues the gateway's certificate.
type ourIssuer int

const (
	issuerLab ourIssuer = iota // the CA of the Edge's certificate, in tls.ca and trusted by the Edge
	// issuerTrustedByUsOnly: another CA, which tls.ca holds (so tls.cert
	// verifies) but the Edge does not trust.
	issuerTrustedByUsOnly
	// issuerUnknown: another CA, in neither tls.ca nor the Edge.
	issuerUnknown
)

// scenario is one mutation of the healthy deployment and what `xgw check`
// must say about it.
type scenario struct {
	name   string
	params func(*labParams)
	zone   edit
	hosts  edit
	config edit
	leaf   func(*certtest.Leaf)
	issuer ourIssuer
	flags  []string

	code             int
	fail, warn, skip []idTarget
	stderr           string // for exit code 2: part of the message
}

type idTarget struct{ ID, Target string }

func (it idTarget) String() string { return it.ID + "[" + it.Target + "]" }

// peerOptIn is the skip of every run without --online.
var peerOptIn = idTarget{"xmpp.peer", ""}

// certSkips are the checks that require tls.cert.
var certSkips = []idTarget{{"tls.name", ""}, {"tls.key", ""}, {"tls.eku", ""}, {"edge", ""}, peerOptIn}

const (
	edgeTarget = "edge.litware.test:5061"
	internal   = "xgw-int.litware.test"
)

var scenarios = []scenario{
	{name: "healthy", code: 0, skip: []idTarget{peerOptIn}},
	{name: "internal name only in the Edge's hosts file (no perimeter DNS)",
		zone: dropLines(internal + "."), code: 0, skip: []idTarget{peerOptIn}},

	// DNS (step 6 and the comment of October 19).
	{name: "second SIP domain without its own SRV record",
		zone: dropLines("_xmpp-server._tcp.college.test."),
		code: 1, fail: []idTarget{{"dns.srv", "college.test"}}, skip: []idTarget{peerOptIn}},
	{name: "SRV record made for the server's domain instead of the SIP domain",
		zone: replace("_xmpp-server._tcp.school.test.", "_xmpp-server._tcp.litware.test."),
		code: 1, fail: []idTarget{{"dns.srv", "school.test"}}, skip: []idTarget{peerOptIn}},
	{name: "SRV record with the client port 5222",
		zone: replace("_xmpp-server._tcp.school.test. IN SRV 0 5 5269", "_xmpp-server._tcp.school.test. IN SRV 0 5 5222"),
		code: 1, fail: []idTarget{{"dns.srv", "school.test"}}, skip: []idTarget{peerOptIn}},
	{name: "internal name in neither DNS nor the hosts file",
		zone: dropLines(internal + "."), hosts: dropLines(internal),
		code: 1, fail: []idTarget{{"dns.internal", internal}, {"hosts.entry", internal}}, skip: []idTarget{peerOptIn}},

	// Certificates (step 5).
	{name: "certificate CN is the external FQDN, not the internal one",
		leaf: func(l *certtest.Leaf) { l.CN = "xmpp.litware.test" },
		code: 1, fail: []idTarget{{"tls.name", internal}}, skip: []idTarget{peerOptIn}},
	{name: "1024-bit RSA key",
		leaf: func(l *certtest.Leaf) { l.RSABits = 1024 },
		code: 1, fail: []idTarget{{"tls.key", ""}, {"edge", edgeTarget}}, skip: []idTarget{peerOptIn}},
	{name: "certificate without clientAuth",
		leaf: func(l *certtest.Leaf) { l.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} },
		code: 1, fail: []idTarget{{"tls.eku", ""}, {"edge", edgeTarget}}, skip: []idTarget{peerOptIn}},
	{name: "our certificate from a CA the Edge does not trust",
		issuer: issuerTrustedByUsOnly,
		code:   1, fail: []idTarget{{"edge", edgeTarget}}, skip: []idTarget{peerOptIn}},
	{name: "our certificate from a CA missing from tls.ca",
		issuer: issuerUnknown,
		code:   1, fail: []idTarget{{"tls.cert", "chain"}}, skip: certSkips},
	{name: "expired certificate",
		// Within the test CA's life (it was made an hour ago), as a real
		// leaf is within its CA's: the chain still verifies at its end.
		leaf: func(l *certtest.Leaf) {
			l.NotBefore, l.NotAfter = time.Now().Add(-50*time.Minute), time.Now().Add(-time.Minute)
		},
		code: 1, fail: []idTarget{{"tls.cert", "validity"}}, skip: certSkips},

	// The gateway's own configuration (step 2: SipIP and XmppIP).
	{name: "listen addresses not on this host",
		params: func(p *labParams) { p.ListenIP = notLocalIP },
		code:   1, fail: []idTarget{{"bind.sip", notLocalIP + ":5061"}, {"bind.xmpp", notLocalIP + ":5269"}},
		warn: []idTarget{{"config", "xmpp.listen"}},
		skip: []idTarget{{"net.xmpp", ""}, {"net.hairpin", ""}, peerOptIn}},

	// The Edge (step 7, Validate Connection).
	{name: "Edge down",
		params: func(p *labParams) { p.EdgeIP = edgeDownIP },
		code:   1, fail: []idTarget{{"edge", edgeTarget}}, skip: []idTarget{peerOptIn}},

	// Names that work but are fragile: warnings, which --strict fails.
	{name: "internal FQDN with an underscore (the seed's srv_xmpp)",
		params: func(p *labParams) { p.Internal = "srv_xmpp.litware.test" },
		code:   0, warn: []idTarget{{"fqdn", "srv_xmpp.litware.test"}}, skip: []idTarget{peerOptIn}},
	{name: "internal FQDN with an underscore, strict",
		params: func(p *labParams) { p.Internal = "srv_xmpp.litware.test" }, flags: []string{"--strict"},
		code: 1, warn: []idTarget{{"fqdn", "srv_xmpp.litware.test"}}, skip: []idTarget{peerOptIn}},
	{name: "one FQDN for both roles (step 3; the lab's firewall loops back)",
		params: func(p *labParams) { p.Internal = p.External },
		code:   0, warn: []idTarget{{"config", "xmpp.internal_fqdn"}}, skip: []idTarget{peerOptIn}},

	{name: "bad config: private_ip is not an address",
		config: replace("private_ip: "+gatewayIP, "private_ip: gateway"),
		code:   report.ExitUsage, stderr: `xmpp.private_ip: found "gateway"`},
}

// TestScenarios runs every scenario against one Kamailio and, for the
// scenarios that keep the healthy zone, one DNS server.
func TestScenarios(t *testing.T) {
	d := newDeployment(t)
	hostWarn := hostSuffixWarn(t)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			cfg, dnsAddr := d.render(t, t.TempDir(), sc)
			args := append([]string{"check", "-c", cfg, "-o", "json", "--dns-server", dnsAddr}, sc.flags...)
			code, stdout, stderr := run(t, nil, args...)
			if code != sc.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, sc.code, stderr)
			}
			if sc.code == report.ExitUsage {
				if stdout != "" || !strings.Contains(stderr, sc.stderr) {
					t.Errorf("stdout %q (want nothing: no probe may run), stderr %q (want %q in it)", stdout, stderr, sc.stderr)
				}
				return
			}
			rep := decodeReport(t, stdout)
			for _, st := range []struct {
				status string
				want   []idTarget
			}{{"fail", sc.fail}, {"warn", slices.Concat(sc.warn, hostWarn)}, {"skip", sc.skip}} {
				if got := rep.with(st.status); !slices.Equal(got, sortedIDs(st.want)) {
					t.Errorf("%s: got %v, want %v", st.status, got, sortedIDs(st.want))
				}
			}
			t.Logf("results that did not pass:\n%s", rep.notPassed())
		})
	}
}

// hostSuffixWarn is the one expectation the lab cannot set: fqdn compares
// the host's own DNS suffix (the test namespace shares the machine's host
// name) with the internal FQDN's domain, and warns on a machine named
// NAME.other-domain. It returns that warn when this machine's name has a
// suffix other than the lab's litware.test, else nothing.
func hostSuffixWarn(tb testing.TB) []idTarget {
	host, err := os.Hostname()
	if err != nil {
		tb.Fatal(err)
	}
	if _, suffix, ok := strings.Cut(host, "."); ok && !strings.EqualFold(strings.TrimSuffix(suffix, "."), "litware.test") {
		tb.Logf("host name %s has DNS suffix %s: every scenario also expects the fqdn[dns-suffix] warning", host, suffix)
		return []idTarget{{"fqdn", "dns-suffix"}}
	}
	return nil
}

// deployment is what the scenarios share: the CAs, the Edge and the DNS
// server of the healthy zone.
type deployment struct {
	ca, other  *certtest.CA
	healthyDNS string // address of the server of the healthy zone
	healthy    string // the healthy zone's text
}

// newDeployment starts the Edge (Kamailio with mutual TLS on edgeIP:5061,
// trusting only the lab CA) and the healthy zone's DNS server.
func newDeployment(tb testing.TB) *deployment {
	tb.Helper()
	testenv.Netns(tb)
	d := &deployment{ca: certtest.NewCA(tb, "Litware Lab CA"), other: certtest.NewCA(tb, "Other CA")}
	edge := d.ca.Issue(tb, certtest.Leaf{CN: "edge.litware.test", DNSNames: []string{"edge.litware.test"}})
	cert, key, ca := edge.WriteFiles(tb, tb.TempDir(), d.ca)
	lab.StartKamailio(tb, lab.KamailioConfig{Addr: edgeIP + ":5061", CertFile: cert, KeyFile: key, CAFile: ca,
		RequireClientCert: true, Aliases: []string{"edge.litware.test"}})
	d.healthy = execTemplate(tb, "healthy.zone.tmpl", healthyParams())
	d.healthyDNS = dnstest.Start(tb, "127.0.0.1:0", "litware.test", d.healthy).Addr
	return d
}

// render writes the scenario's deployment to dir (config, certificate,
// key, CA bundle, hosts file) and returns the config's path and the
// address of a DNS server for its zone.
func (d *deployment) render(tb testing.TB, dir string, sc scenario) (cfgPath, dnsAddr string) {
	tb.Helper()
	p := healthyParams()
	if sc.params != nil {
		sc.params(&p)
	}
	apply := func(e edit, text string) string {
		if e == nil {
			return text
		}
		return e(tb, text)
	}
	zone := apply(sc.zone, execTemplate(tb, "healthy.zone.tmpl", p))
	writeFile(tb, filepath.Join(dir, "hosts"), apply(sc.hosts, execTemplate(tb, "hosts.tmpl", p)))
	cfgPath = filepath.Join(dir, "xgw.yaml")
	writeFile(tb, cfgPath, apply(sc.config, execTemplate(tb, "xgw.yaml.tmpl", p)))

	leaf := certtest.Leaf{CN: p.Internal, DNSNames: slices.Compact(slices.Concat([]string{p.Internal, p.External}, p.Domains))}
	if sc.leaf != nil {
		sc.leaf(&leaf)
	}
	issuer, bundle := d.ca, d.ca.CertPEM
	switch sc.issuer {
	case issuerTrustedByUsOnly:
		issuer, bundle = d.other, slices.Concat(d.ca.CertPEM, d.other.CertPEM)
	case issuerUnknown:
		issuer = d.other
	}
	issuer.Issue(tb, leaf).WriteFiles(tb, dir, nil)
	writeFile(tb, filepath.Join(dir, "ca.pem"), string(bundle))

	if zone == d.healthy {
		return cfgPath, d.healthyDNS
	}
	return cfgPath, dnstest.Start(tb, "127.0.0.1:0", "litware.test", zone).Addr
}

func writeFile(tb testing.TB, name, data string) {
	tb.Helper()
	if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// checkReport is the JSON contract (README, "JSON output"), as a script
// reads it.
type checkReport struct {
	SchemaVersion int `json:"schema_version"`
	Results       []struct {
		ID, Target, Status, Found, Expected, Fix string
		DurationMS                               int64 `json:"duration_ms"`
	} `json:"results"`
	Counts map[string]int `json:"counts"`
}

func decodeReport(tb testing.TB, out string) *checkReport {
	tb.Helper()
	var r checkReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		tb.Fatalf("output is not the JSON report: %v\n%s", err, out)
	}
	if r.SchemaVersion != 1 || len(r.Results) == 0 {
		tb.Fatalf("schema_version %d with %d results:\n%s", r.SchemaVersion, len(r.Results), out)
	}
	return &r
}

// with returns the sorted (id, target) pairs of the results with status.
// A skip caused by a prerequisite has an empty target.
func (r *checkReport) with(status string) []idTarget {
	var out []idTarget
	for _, res := range r.Results {
		if res.Status == status {
			out = append(out, idTarget{res.ID, res.Target})
		}
	}
	return sortedIDs(out)
}

func sortedIDs(ids []idTarget) []idTarget {
	ids = slices.Clone(ids)
	slices.SortFunc(ids, func(a, b idTarget) int { return strings.Compare(a.String(), b.String()) })
	return ids
}

func (r *checkReport) notPassed() string {
	var b strings.Builder
	for _, res := range r.Results {
		if res.Status != "pass" {
			fmt.Fprintf(&b, "  %s %s[%s]: %s\n    fix: %s\n", res.Status, res.ID, res.Target, res.Found, res.Fix)
		}
	}
	return b.String()
}
