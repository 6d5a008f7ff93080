package cmd

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/gateway/trace"
	"github.com/xgw-gateway/xgw/internal/certtest"
	"github.com/xgw-gateway/xgw/internal/dnstest"
	"github.com/xgw-gateway/xgw/internal/testenv"
)

var updateTrace = flag.Bool("update", false, "rewrite the golden files in testdata/trace")

// TestTraceRender prints testdata/trace/session.jsonl (a relayed MESSAGE:
// SIP in, DNS, the s2s stream with dialback, the XMPP message out, the 200)
// as `xgw trace` does and compares with testdata/trace/<case>.golden.
func TestTraceRender(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		color bool
	}{
		{"all", nil, false},
		{"grep-callid", []string{"--grep", "8f3c2a@edge.sip.example"}, false},
		{"grep-stream", []string{"--grep", "c2e1b0a9"}, false},
		{"proto-sip", []string{"--proto", "SIP"}, false},
		{"color", []string{"--proto", "xmpp", "--grep", "xmpp.example"}, true},
		{"no-color flag", []string{"--no-color", "--proto", "dns"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, out, _ := TestStreams()
			s.OutTTY = tt.color
			root := NewRootCmd(s)
			root.SetArgs(append([]string{"trace", filepath.Join("..", "testdata", "trace", "session.jsonl")}, tt.args...))
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("..", "testdata", "trace", strings.ReplaceAll(tt.name, " ", "-")+".golden")
			if *updateTrace {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd -run TestTraceRender -update)", err)
			}
			if out.String() != string(want) {
				t.Errorf("output differs from %s:\n%s", golden, out.String())
			}
		})
	}
}

func TestTraceErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"proto\":\"xgw\"}\nnot json\n"), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing file", []string{filepath.Join(dir, "none.jsonl")}, "expected the trace file of xgw serve --trace"},
		{"not a trace", []string{bad}, "trace line 2:"},
		{"bad proto", []string{bad, "--proto", "http"}, `--proto: trace protocol "http": expected sip, xmpp or dns`},
		{"no file", nil, "missing the trace FILE to read (expected e.g. xgw trace /var/lib/xgw/trace.jsonl"},
		{"two files", []string{bad, bad}, "one trace FILE expected, found 2 arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _ := TestStreams()
			root := NewRootCmd(s)
			root.SetArgs(append([]string{"trace"}, tt.args...))
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if ee, ok := err.(*exitError); !ok || ee.code != 2 {
				t.Errorf("err = %#v, want exit code 2", err)
			}
		})
	}
}

// syncBuffer is written by the follower and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTraceFollow writes a trace with a small rotation cap while `xgw
// trace --follow` reads it: every record appears once, across rotations.
func TestTraceFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.jsonl")
	tr, err := trace.Open(trace.Options{File: path, Protocols: trace.XMPP, MaxSize: 1500, MaxFiles: 10})
	if err != nil {
		t.Fatal(err)
	}
	s, _, _ := TestStreams()
	out := &syncBuffer{}
	s.Out = out
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		root := NewRootCmd(s)
		root.SetArgs([]string{"trace", path, "--follow", "--proto", "xmpp"})
		done <- root.ExecuteContext(ctx)
	}()
	const n = 20
	for i := 0; i < n; i++ {
		tr.Trace(trace.Event{Proto: trace.XMPP, Dir: trace.Out, Peer: "127.0.0.1:5269",
			Msg: []byte("<message id='m" + strconv.Itoa(i) + "'><body>x</body></message>")})
		time.Sleep(20 * time.Millisecond)
	}
	tr.Close()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(out.String(), "<message") < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for i := 0; i < n; i++ {
		if c := strings.Count(got, "id='m"+strconv.Itoa(i)+"'"); c != 1 {
			t.Errorf("message m%d printed %d times", i, c)
		}
	}
	if _, err := os.Stat(path + ".1"); err != nil {
		t.Errorf("the trace never rotated (the test meant to follow across a rotation): %v", err)
	}
}

// TestServeTraceSettings: the trace section, then the flags over it.
func TestServeTraceSettings(t *testing.T) {
	tests := []struct {
		name    string
		section config.Trace
		args    []string
		want    traceSettings
		wantErr string
	}{
		{"off by default", config.Trace{File: config.DefaultTraceFile}, nil, traceSettings{file: config.DefaultTraceFile}, ""},
		{"config only", config.Trace{File: "/var/lib/xgw/t.jsonl", Protocols: []string{"sip"}, Bodies: true}, nil,
			traceSettings{protocols: trace.SIP, file: "/var/lib/xgw/t.jsonl", bodies: true}, ""},
		{"--trace overrides", config.Trace{File: config.DefaultTraceFile, Protocols: []string{"sip"}}, []string{"--trace", "xmpp,dns"},
			traceSettings{protocols: trace.XMPP | trace.DNS, file: config.DefaultTraceFile}, ""},
		{"--trace-file alone traces sip and xmpp", config.Trace{File: config.DefaultTraceFile}, []string{"--trace-file", "/tmp/t.jsonl"},
			traceSettings{protocols: trace.SIP | trace.XMPP, file: "/tmp/t.jsonl"}, ""},
		{"--trace-bodies=false overrides bodies: true", config.Trace{File: config.DefaultTraceFile, Protocols: []string{"sip"}, Bodies: true},
			[]string{"--trace-bodies=false"}, traceSettings{protocols: trace.SIP, file: config.DefaultTraceFile}, ""},
		{"bad protocol", config.Trace{File: config.DefaultTraceFile}, []string{"--trace", "sip,rtp"}, traceSettings{},
			`--trace: trace protocol "rtp": expected sip, xmpp or dns`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _ := TestStreams()
			var got *serveOptions
			g := &globalOptions{}
			root := &cobra.Command{Use: "xgw"}
			g.addFlags(root.PersistentFlags())
			root.AddCommand(newServeCmd(s, g, func(_ context.Context, o *serveOptions) error { got = o; return nil }))
			root.SetArgs(append([]string{"serve"}, tt.args...))
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			st, err := got.trace.settings(&config.Config{Trace: tt.section})
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || st != tt.want {
				t.Errorf("settings = %+v, %v; want %+v", st, err, tt.want)
			}
		})
	}
}

// TestServeTrace runs `xgw serve --force --trace xmpp --trace-file F`
// against the scenarios' deployment (Edge down) and opens an s2s stream:
// the stream header it sent and the gateway's answer are in the trace,
// and `xgw trace` prints them.
func TestServeTrace(t *testing.T) {
	testenv.Netns(t)
	d := &deployment{ca: certtest.NewCA(t, "Litware Lab CA"), other: certtest.NewCA(t, "Other CA")}
	d.healthy = execTemplate(t, "healthy.zone.tmpl", healthyParams())
	d.healthyDNS = dnstest.Start(t, "127.0.0.1:0", "litware.test", d.healthy).Addr
	edgeDown := scenario{name: "Edge down", params: func(p *labParams) { p.EdgeIP = edgeDownIP }}
	cfg, dnsAddr := d.render(t, t.TempDir(), edgeDown)
	file := filepath.Join(t.TempDir(), "trace.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sctx, stop := context.WithCancel(ctx)
	done := make(chan string, 1)
	go func() {
		_, _, stderr := serveCtx(sctx, "-c", cfg, "--dns-server", dnsAddr, "--state-dir", t.TempDir(), "-o", "json",
			"--log-format", "json", "--force", "--trace", "xmpp", "--trace-file", file)
		done <- stderr
	}()
	answered := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !answered; time.Sleep(50 * time.Millisecond) {
		answered = servingXMPP(gatewayIP+":5269", "school.test")
	}
	if !answered {
		stop()
		t.Fatalf("xgw serve never answered a stream; stderr:\n%s", <-done)
	}
	time.Sleep(100 * time.Millisecond)
	stop()
	stderr := <-done
	if !strings.Contains(stderr, `"msg":"protocol trace on"`) {
		t.Errorf("no log line saying the trace is on:\n%s", stderr)
	}
	s, out, _ := TestStreams()
	root := NewRootCmd(s)
	root.SetArgs([]string{"trace", file, "--proto", "xmpp"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"<- XMPP 127.", "school.test <- peer.example", "from='peer.example' to='school.test'", // what we sent
		"-> XMPP 127.", "<stream:features>", // the answer, indented
	} {
		if !strings.Contains(got, want) {
			t.Errorf("xgw trace output lacks %q:\n%s", want, got)
		}
	}
}
