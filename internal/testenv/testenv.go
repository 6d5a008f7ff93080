// Package testenv lets interop tests demand their real peers: in CI
// (CI=true) a missing peer or namespace fails the test, on a developer's
// machine it skips with the reason.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI, where nothing may be skipped.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing ends the test because a prerequisite is absent: Fatal in CI,
// Skip elsewhere.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("required test peer missing (CI=true): "+format, args...)
	}
	t.Skipf("test peer missing: "+format, args...)
}

// Binary returns the path of a program the test needs.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not on PATH (bash scripts/install-peers.sh installs it)", name)
	}
	return p
}

// Netns returns the name of the network namespace scripts/test.sh runs the
// tests in. Tests that bind port 53 or other fixed ports, or start daemons
// that read /etc/resolv.conf, need it: there the loopback range and the
// resolver belong to the tests.
func Netns(t testing.TB) string {
	t.Helper()
	ns := os.Getenv("XGW_NETNS")
	if ns == "" {
		Missing(t, "not inside the test network namespace; run: bash scripts/test.sh")
	}
	return ns
}
