package report_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/checks"
	"github.com/xgw-gateway/xgw/report"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/report")

var fixtures = map[string][]checks.Result{
	"healthy": {
		{ID: "config", Status: checks.Pass, Found: "2 SIP domain(s)", Duration: 1 * time.Millisecond},
		{ID: "dns.srv", Target: "litware.test", Status: checks.Pass, Found: "_xmpp-server._tcp.litware.test -> xmpp.litware.test:5269", Duration: 3 * time.Millisecond},
	},
	"mixed": {
		{ID: "config", Status: checks.Pass, Found: "2 SIP domain(s)", Duration: 1 * time.Millisecond},
		{ID: "dns.srv", Target: "litware.test", Status: checks.Pass, Found: "_xmpp-server._tcp.litware.test -> xmpp.litware.test:5269", Duration: 3 * time.Millisecond},
		{ID: "dns.srv", Target: "college.litware.test", Status: checks.Fail, Found: "no SRV record _xmpp-server._tcp.college.litware.test (NXDOMAIN)",
			Expected: "_xmpp-server._tcp.college.litware.test SRV 0 5 5269 xmpp.litware.test.", Fix: "add the record to the public zone of college.litware.test", Duration: 2 * time.Millisecond},
		{ID: "fqdn", Target: "srv_xmpp.litware.test", Status: checks.Warn, Found: "xmpp.internal_fqdn contains '_'", Expected: "letters, digits and '-'", Fix: "rename it <srv-xmpp> & retry"},
		{ID: "tls.name", Status: checks.Skip, Found: "prerequisite tls.cert is fail"},
	},
}

func TestRender(t *testing.T) {
	for name, results := range fixtures {
		for _, format := range report.Formats {
			for _, strict := range []bool{false, true} {
				file := name + "." + format
				if strict {
					file = name + ".strict." + format
				}
				t.Run(file, func(t *testing.T) {
					r, err := report.New(format, report.Options{})
					if err != nil {
						t.Fatal(err)
					}
					var buf bytes.Buffer
					if err := r.Render(&buf, &report.Report{Results: results, Strict: strict}); err != nil {
						t.Fatal(err)
					}
					golden(t, filepath.Join("..", "testdata", "report", file+".golden"), buf.Bytes())
				})
			}
		}
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test ./report -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// The JSON document is a contract: pin its keys and types, not just bytes.
func TestJSONSchema(t *testing.T) {
	r, _ := report.New("json", report.Options{})
	var buf bytes.Buffer
	if err := r.Render(&buf, &report.Report{Results: fixtures["mixed"]}); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["schema_version"] != float64(1) {
		t.Errorf("schema_version = %v", doc["schema_version"])
	}
	results := doc["results"].([]any)
	first := results[2].(map[string]any)
	wantKeys := []string{"duration_ms", "expected", "fix", "found", "id", "status", "target"}
	for _, k := range wantKeys {
		if _, ok := first[k]; !ok {
			t.Errorf("result lacks key %q: %v", k, first)
		}
	}
	if len(first) != len(wantKeys) {
		t.Errorf("result has %d keys, want %d: %v", len(first), len(wantKeys), first)
	}
	if first["status"] != "fail" || first["target"] != "college.litware.test" || first["duration_ms"] != float64(2) {
		t.Errorf("result = %v", first)
	}
	counts := doc["counts"].(map[string]any)
	for k, want := range map[string]float64{"pass": 2, "fail": 1, "warn": 1, "skip": 1} {
		if counts[k] != want {
			t.Errorf("counts[%s] = %v, want %v", k, counts[k], want)
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name    string
		results []checks.Result
		strict  bool
		want    int
	}{
		{"all pass", fixtures["healthy"], false, report.ExitOK},
		{"fail", fixtures["mixed"], false, report.ExitFailed},
		{"warn only", []checks.Result{{ID: "a", Status: checks.Warn}, {ID: "b", Status: checks.Skip}}, false, report.ExitOK},
		{"warn only, strict", []checks.Result{{ID: "a", Status: checks.Warn}}, true, report.ExitFailed},
		{"skip only, strict", []checks.Result{{ID: "a", Status: checks.Skip}}, true, report.ExitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &report.Report{Results: tt.results, Strict: tt.strict}
			if got := r.ExitCode(); got != tt.want {
				t.Errorf("ExitCode = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestColor(t *testing.T) {
	for _, on := range []bool{true, false} {
		r, _ := report.New("text", report.Options{Color: on})
		var buf bytes.Buffer
		if err := r.Render(&buf, &report.Report{Results: fixtures["mixed"]}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(buf.String(), "\x1b["); got != on {
			t.Errorf("Color=%v: escape codes present = %v", on, got)
		}
	}
}

func TestUnknownFormat(t *testing.T) {
	_, err := report.New("yaml", report.Options{})
	if err == nil || !strings.Contains(err.Error(), "text, json, junit") {
		t.Errorf("err = %v, want the list of valid formats", err)
	}
}
