// Package checks probes an xgw deployment before go-live: DNS, certificates,
// hosts file, bind addresses, firewall loopback, the Edge and the federated
// peers. Each probe is a Check value in the ordered catalog (catalog.go);
// Run executes a selection concurrently under one deadline and returns the
// results in catalog order.
//
// Checks never print: they return Results, and package report renders them.
//
// Status meanings:
//   - pass: the deployment is right in this respect.
//   - warn: it works but is fragile or unusual (--strict makes it fail).
//   - fail: it is wrong, or the probe could not get the answer it needs.
//   - skip: a prerequisite failed (Found names it) or the probe is opt-in.
package checks

import (
	"context"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/resolve"
)

// Status is the outcome of one probe on one target, in severity order.
type Status int

const (
	Pass Status = iota
	Skip
	Warn
	Fail
)

var statusNames = [...]string{"pass", "skip", "warn", "fail"}

func (s Status) String() string { return statusNames[s] }

// MarshalText writes the lower-case name used in JSON and JUnit.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Result is what one probe found about one target.
type Result struct {
	ID       string // the check's stable ID
	Target   string // the SIP domain, partner, address... ("" when the check has one target)
	Status   Status
	Found    string // what the probe saw
	Expected string // what a healthy deployment shows
	Fix      string // a concrete remedy (empty on pass)
	Duration time.Duration
}

// Check is one probe in the catalog.
type Check struct {
	ID    string
	Title string
	// Requires lists checks whose fail or skip turns this one into a skip:
	// no point in testing a certificate's name when it did not load.
	Requires []string
	// OptIn checks leave the LAN (third-party peers); they run only with
	// Env.Online or when named by --only.
	OptIn bool
	Run   func(ctx context.Context, env *Env) []Result
}

// Env is what the probes see of the world. Nil seams mean the real thing.
type Env struct {
	Config   *config.Config
	Resolver *resolve.Resolver
	Dialer   *net.Dialer
	// Online allows opt-in checks that leave the LAN.
	Online bool
	Now    func() time.Time
	// ReadFile reads the hosts file and PEM files.
	ReadFile func(name string) ([]byte, error)
	// LocalAddrs lists the addresses of this host's interfaces.
	LocalAddrs func() ([]netip.Addr, error)
	// Hostname returns this host's name (for the DNS-suffix comparison).
	Hostname func() (string, error)
}

func (e *Env) withDefaults() *Env {
	c := *e
	if c.Dialer == nil {
		c.Dialer = &net.Dialer{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ReadFile == nil {
		c.ReadFile = os.ReadFile
	}
	if c.LocalAddrs == nil {
		c.LocalAddrs = interfaceAddrs
	}
	if c.Hostname == nil {
		c.Hostname = os.Hostname
	}
	return &c
}

func interfaceAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out, nil
}

// result builders keep the probes short.

func pass(id, target, found string) Result {
	return Result{ID: id, Target: target, Status: Pass, Found: found}
}

func fail(id, target, found, expected, fix string) Result {
	return Result{ID: id, Target: target, Status: Fail, Found: found, Expected: expected, Fix: fix}
}

func warn(id, target, found, expected, fix string) Result {
	return Result{ID: id, Target: target, Status: Warn, Found: found, Expected: expected, Fix: fix}
}

func skip(id, target, why string) Result {
	return Result{ID: id, Target: target, Status: Skip, Found: why}
}
