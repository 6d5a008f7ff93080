package checks

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"strings"

	"github.com/xgw-gateway/xgw/internal/resolve"
)

// hostsEntryCheck covers the seed article's last Edge step: without a
// perimeter DNS server, the Edge's hosts file must map the internal FQDN to
// the gateway's private address.
var hostsEntryCheck = Check{
	ID:    "hosts.entry",
	Title: "The Edge's hosts file maps the internal FQDN to private_ip when DNS does not",
	Run:   dnsProbe("hosts.entry", runHostsEntry),
}

func runHostsEntry(ctx context.Context, env *Env, r *resolve.Resolver) []Result {
	const id = "hosts.entry"
	v := lookInternal(ctx, env, r)
	expected := "a line \"" + v.hostsLine() + "\" in " + edgeHostsFile + ", unless DNS already maps " + v.name + " to " + v.wantText()
	add := "add this line at the end of " + edgeHostsFile + ": " + v.hostsLine()
	switch {
	case v.hostsErr != nil && errors.Is(v.hostsErr, fs.ErrNotExist) && v.dnsRight():
		return []Result{pass(id, v.name, "not needed: DNS answers "+v.name+" → "+joinAddrs(v.dns)+" ("+v.hostsPath+" does not exist)")}
	case v.hostsErr != nil:
		return []Result{fail(id, v.name, v.hostsErr.Error(), expected,
			"set checks.hosts_file to a readable copy of "+edgeHostsFile+", saved as UTF-8 or ANSI text")}
	case len(v.hosts) > 0 && v.hostsRight():
		return []Result{pass(id, v.name, fmt.Sprintf("%s line %d maps %s to %s; the Edge reads its own hosts file, so make sure this is (a copy of) the Edge's",
			v.hostsPath, v.hosts[0].Line, v.name, v.hosts[0].Addr))}
	case len(v.hosts) > 0:
		h := v.hosts[0]
		return []Result{fail(id, v.name, fmt.Sprintf("%s line %d maps %s to %s (the first matching line wins, and it overrides DNS)",
			v.hostsPath, h.Line, v.name, h.Addr), expected,
			fmt.Sprintf("in %s, change line %d to: %s (and delete any other line naming %s)", edgeHostsFile, h.Line, v.hostsLine(), v.name))}
	case v.dnsRight():
		return []Result{pass(id, v.name, "not needed: DNS answers "+v.name+" → "+joinAddrs(v.dns)+" ("+v.hostsPath+" has no entry)")}
	case v.dnsErr == nil:
		return []Result{fail(id, v.name, fmt.Sprintf("%s has no entry for %s, and DNS maps it to %s (see dns.internal)", v.hostsPath, v.name, joinAddrs(v.dns)),
			expected, "correct the DNS record (see dns.internal), or "+add+"; the hosts file takes precedence over DNS")}
	}
	return []Result{fail(id, v.name, fmt.Sprintf("%s has no entry for %s, and DNS gives no address (%v)", v.hostsPath, v.name, v.dnsErr),
		expected, add)}
}

// hostsEntry is one address line of a hosts file.
type hostsEntry struct {
	Line  int // 1-based
	Addr  netip.Addr
	Names []string
}

const (
	// maxHostsSize bounds what is parsed: block-list hosts files reach a
	// few MiB; anything far larger is not a hosts file.
	maxHostsSize = 16 << 20
	// maxHostsLine bounds one line, which resolvers also cap.
	maxHostsLine = 64 << 10
)

// parseHosts reads a hosts file in Unix or Windows format: '#' comments,
// blank lines, an address followed by names separated by spaces or tabs,
// CRLF line ends and a UTF-8 byte-order mark. Lines whose first field is
// not an IP address are skipped, as resolvers do. UTF-16 is refused: Windows
// ignores a hosts file saved that way, so a silent parse would mislead.
func parseHosts(r io.Reader) ([]hostsEntry, error) {
	br := bufio.NewReader(io.LimitReader(r, maxHostsSize+1))
	if bom, _ := br.Peek(2); bytes.Equal(bom, []byte{0xFF, 0xFE}) || bytes.Equal(bom, []byte{0xFE, 0xFF}) {
		return nil, errors.New("found UTF-16 text, which Windows and Unix resolvers ignore; save the hosts file as ANSI or UTF-8")
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 4096), maxHostsLine)
	var out []hostsEntry
	size := 0
	n := 0
	for sc.Scan() {
		n++
		size += len(sc.Bytes()) + 1
		if size > maxHostsSize {
			return nil, fmt.Errorf("found more than %d MiB, expected a hosts file", maxHostsSize>>20)
		}
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, "\uFEFF")
		}
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line) // spaces, tabs and the CR of CRLF
		if len(f) < 2 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			continue
		}
		out = append(out, hostsEntry{Line: n, Addr: a.Unmap(), Names: f[1:]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w (expected lines under %d KiB)", n+1, err, maxHostsLine>>10)
	}
	return out, nil
}

// readHosts reads and parses the hosts file at path through env.ReadFile.
func readHosts(env *Env, path string) ([]hostsEntry, error) {
	data, err := env.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("hosts file: %w", err)
	}
	entries, err := parseHosts(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("hosts file %s: %w", path, err)
	}
	return entries, nil
}

// hostsLookup returns the entries that name host, in file order; names
// compare case-insensitively, as resolvers do.
func hostsLookup(entries []hostsEntry, host string) []hostsEntry {
	var out []hostsEntry
	for _, e := range entries {
		for _, n := range e.Names {
			if sameFQDN(n, host) {
				out = append(out, e)
				break
			}
		}
	}
	return out
}
