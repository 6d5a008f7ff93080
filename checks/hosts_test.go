package checks

import (
	"context"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseHosts(t *testing.T) {
	e := func(line int, addr string, names ...string) hostsEntry {
		return hostsEntry{Line: line, Addr: netip.MustParseAddr(addr), Names: names}
	}
	tests := []struct {
		name    string
		in      string
		want    []hostsEntry
		wantErr string
	}{
		{"unix", "127.0.0.1 localhost\n# comment\n\n192.0.2.20 xgw-int.litware.test xgw-int\n",
			[]hostsEntry{e(1, "127.0.0.1", "localhost"), e(4, "192.0.2.20", "xgw-int.litware.test", "xgw-int")}, ""},
		{"trailing comment", "192.0.2.20 a.test b.test # the gateway\n", []hostsEntry{e(1, "192.0.2.20", "a.test", "b.test")}, ""},
		{"comment glued to a name", "192.0.2.20 a.test#old\n", []hostsEntry{e(1, "192.0.2.20", "a.test")}, ""},
		{"CRLF and tabs", "\t192.0.2.20\t\ta.test\tb.test\r\n::1\tlocalhost\r\n", []hostsEntry{e(1, "192.0.2.20", "a.test", "b.test"), e(2, "::1", "localhost")}, ""},
		{"UTF-8 BOM before the first entry", "\uFEFF192.0.2.20 a.test\r\n", []hostsEntry{e(1, "192.0.2.20", "a.test")}, ""},
		{"IPv6 with a zone", "fe80::1%eth0 ll.test\n2001:db8::20 v6.test\n", []hostsEntry{e(1, "fe80::1%eth0", "ll.test"), e(2, "2001:db8::20", "v6.test")}, ""},
		{"IPv4-mapped IPv6 compares as IPv4", "::ffff:192.0.2.20 a.test\n", []hostsEntry{e(1, "192.0.2.20", "a.test")}, ""},
		{"lines that are not entries are skipped", "not-an-ip a.test\n192.0.2.20\n192.0.2.300 b.test\n192.0.2.21 c.test\n", []hostsEntry{e(4, "192.0.2.21", "c.test")}, ""},
		{"no final newline", "192.0.2.20 a.test", []hostsEntry{e(1, "192.0.2.20", "a.test")}, ""},
		{"empty", "", nil, ""},
		{"UTF-16 refused", "\xff\xfe1\x009\x002\x00", nil, "UTF-16"},
		{"overlong line refused", "192.0.2.20 a.test\n192.0.2.21 " + strings.Repeat("x", maxHostsLine) + "\n", nil, "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHosts(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// endless produces long comment lines forever: parsing must stop at the
// size limit instead of reading on.
type endless struct{ n int }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		if e.n++; e.n%1000 == 0 {
			p[i] = '\n'
		} else {
			p[i] = '#'
		}
	}
	return len(p), nil
}

func TestParseHostsBounded(t *testing.T) {
	_, err := parseHosts(&endless{})
	if err == nil || !strings.Contains(err.Error(), "MiB") {
		t.Fatalf("err = %v, want a size error", err)
	}
}

func TestHostsLookupWindowsFile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "testdata", "hosts", "windows.hosts"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := parseHosts(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host  string
		lines []int
	}{
		{"xgw-int.litware.test", []int{10}}, // written XGW-INT.Litware.Test. after a tab
		{"ocs-xmpp.litware.test", []int{10}},
		{"EDGE.LITWARE.TEST.", []int{9}},
		{"localhost", []int{7, 8}},
		{"commented.litware.test", nil},
		{"gateway", nil}, // "# XMPP gateway" is a comment, not a name
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			var lines []int
			for _, e := range hostsLookup(entries, tt.host) {
				lines = append(lines, e.Line)
			}
			if !reflect.DeepEqual(lines, tt.lines) {
				t.Errorf("lines = %v, want %v", lines, tt.lines)
			}
		})
	}
}

// A hosts file that cannot be read is a fail even when DNS answers: a
// wrong entry in it would override DNS, and nobody can tell.
func TestHostsEntryUnreadable(t *testing.T) {
	env := &Env{
		Config:   dnsConfig("unix.hosts", nil),
		Resolver: startZone(t, "healthy.zone"),
		ReadFile: func(name string) ([]byte, error) {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	checkDNSResults(t, Run(ctx, env, []Check{hostsEntryCheck}), []dnsWant{
		{"hosts.entry", intFQDN, Fail, []string{"unix.hosts: permission denied", "set checks.hosts_file"}},
	})
}

// checks.hosts_file, like every path in the config, is relative to the
// config file's folder, not to the working directory.
func TestHostsEntryRelativeToConfig(t *testing.T) {
	c := dnsConfig("", nil)
	c.File = filepath.Join("..", "testdata", "hosts", "xgw.yaml")
	c.Checks.HostsFile = "unix.hosts"
	env := &Env{Config: c, Resolver: startZone(t, "internal-missing.zone")}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	checkDNSResults(t, Run(ctx, env, []Check{dnsInternalCheck, hostsEntryCheck}), []dnsWant{
		{"dns.internal", intFQDN, Pass, []string{"via hosts file", filepath.Join("..", "testdata", "hosts", "unix.hosts") + " line 8"}},
		{"hosts.entry", intFQDN, Pass, []string{"line 8 maps"}},
	})
}
