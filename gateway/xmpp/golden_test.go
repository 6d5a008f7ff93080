package xmpp

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xgw-gateway/xgw/gateway/config"
)

var update = flag.Bool("update", false, "rewrite testdata/wire/*.golden")

// TestWireGolden pins the exact bytes the receiving side writes for a few
// whole exchanges (stream ids normalised), in testdata/wire/<case>.golden.
// Run with -update after an intended change.
func TestWireGolden(t *testing.T) {
	f := newFed(t)
	a := f.add(peerOpts{domains: []string{"a.test"}, partners: []config.Partner{{Domain: "b.test"}}})
	good := dialbackKey(hashSecret(a.secret), "b.test", "a.test", "sid")
	tests := []struct {
		name string
		in   []string
		end  string // last thing the server sends
	}{
		{"features", []string{hdr("b.test", "a.test")}, "</stream:features>"},
		{"authoritative-valid", []string{hdr("b.test", "a.test"), "<db:verify from='b.test' to='a.test' id='sid'>" + good + "</db:verify>"}, "type='valid'/>"},
		{"host-unknown", []string{hdr("b.test", "c.test")}, "</stream:stream>"},
		{"dialback-error-unlisted", []string{hdr("googlemail.test", "a.test"), "<db:result from='googlemail.test' to='a.test'>k</db:result>"}, "</db:result>"},
	}
	ids := regexp.MustCompile(`id='[0-9a-f]{24}'`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := dialWire(t, a.addr)
			for _, s := range tt.in {
				w.send(s)
			}
			w.expect(tt.end)
			got := ids.ReplaceAllString(w.all(), "id='ID'")
			got = strings.ReplaceAll(got, "><", ">\n<") + "\n"
			path := filepath.Join("testdata", "wire", tt.name+".golden")
			if *update {
				os.MkdirAll(filepath.Dir(path), 0o755)
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestWireGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("wire output differs from %s:\ngot:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}
