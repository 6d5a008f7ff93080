#!/usr/bin/env bash
# The full test suite, as README.md "Tests" describes and CI runs it.
#
# It installs the real peers the interop tests talk to (Prosody, Kamailio,
# sipp, nftables), then runs `go test` inside a network namespace of its own:
# there the whole 127.0.0.0/8 belongs to the tests, and Prosody's resolver
# (/etc/netns/NAME/resolv.conf -> 127.0.0.53) is the DNS server the tests
# start. Nothing on the host's network or resolver is touched.
#
# Usage: bash scripts/test.sh [go test flags] [packages]   (default ./...)
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "scripts/test.sh: run as root (it creates a network namespace and installs packages)" >&2; exit 2; }

bash scripts/install-peers.sh

export PATH=$PATH:/usr/local/go/bin
go mod download
# Vet the packages named on the command line (flags such as -run are for go test only).
args=("$@")
pkgs=()
for a in "${args[@]}"; do case "$a" in ./*|*/...) pkgs+=("$a") ;; esac; done
[ ${#pkgs[@]} -gt 0 ] || { pkgs=(./...); args+=(./...); }
go vet "${pkgs[@]}"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
[ -z "$unformatted" ] || { echo "gofmt needed on: $unformatted" >&2; exit 1; }

ns=xgwtest-$$
cleanup() {
	for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "/etc/netns/$ns"
	rm -f /run/xgw-lab-"$ns"-*.lock # internal/lab's locks for this namespace
}
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
mkdir -p "/etc/netns/$ns"
echo "nameserver 127.0.0.53" > "/etc/netns/$ns/resolv.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' > "/etc/netns/$ns/hosts"

# XGW_NETNS tells the tests they own this namespace's loopback and port 53.
# -p 2: two cores; the interop tests serialise on the shared DNS port themselves.
ip netns exec "$ns" env XGW_NETNS="$ns" go test -p 2 -timeout 15m -count=1 "${args[@]}"
