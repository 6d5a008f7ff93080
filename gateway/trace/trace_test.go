package trace

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func readRecords(t *testing.T, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []Record
	if err := Read(f, Filter{}, func(r Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestNilTracerIsOff(t *testing.T) {
	var tr *Tracer
	if tr.On(SIP) {
		t.Error("nil Tracer is on")
	}
	tr.Trace(Event{Proto: SIP, Msg: []byte("x")}) // must not panic
	if err := tr.Close(); err != nil {
		t.Error(err)
	}
}

func TestTracerWritesRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.jsonl")
	tr, err := Open(Options{File: path, Protocols: SIP | XMPP})
	if err != nil {
		t.Fatal(err)
	}
	tr.Trace(Event{Proto: SIP, Dir: In, Peer: "127.0.0.1:5061", Msg: []byte(sipMessage)})
	tr.Trace(Event{Proto: XMPP, Dir: Out, Peer: "127.0.0.1:5269", Local: "sip.example", Remote: "xmpp.example", Stream: "s1",
		Msg: []byte(`<message><body>hi</body><thread>c4ll@host</thread></message>`)})
	tr.Trace(Event{Proto: DNS, Dir: Out, Msg: []byte("not traced: dns is off")})
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, path)
	if len(recs) != 3 {
		t.Fatalf("got %d records, want start + 2: %+v", len(recs), recs)
	}
	if recs[0].Proto != "xgw" || recs[0].SchemaVersion != SchemaVersion {
		t.Errorf("first record = %+v, want the start note", recs[0])
	}
	s := recs[1]
	if s.Proto != "sip" || s.Dir != In || s.CallID != "c4ll@host" || s.Local != "xmpp.example" || s.Remote != "sip.example" ||
		!s.Redacted || s.Size != len(sipMessage) || strings.Contains(s.Msg, "hello there") {
		t.Errorf("sip record = %+v", s)
	}
	x := recs[2]
	if x.Proto != "xmpp" || x.Thread != "c4ll@host" || x.Stream != "s1" || !strings.Contains(x.Msg, "<body>[2 bytes redacted]</body>") {
		t.Errorf("xmpp record = %+v", x)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("trace file mode = %v, %v; want 0600", fi.Mode(), err)
	}
}

func TestRotation(t *testing.T) {
	tests := []struct {
		name      string
		maxFiles  int
		records   int
		wantFiles int
	}{
		{"several files, oldest removed", 3, 60, 3},
		{"one file only", 1, 60, 1},
		{"under the cap", 5, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "trace.jsonl")
			const maxSize = 2000
			tr, err := Open(Options{File: path, Protocols: SIP, MaxSize: maxSize, MaxFiles: tt.maxFiles, Buffer: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < tt.records; i++ {
				tr.Trace(Event{Proto: SIP, Dir: In, Msg: []byte(sipMessage)})
			}
			if err := tr.Close(); err != nil {
				t.Fatal(err)
			}
			names, _ := filepath.Glob(path + "*")
			if len(names) != tt.wantFiles {
				t.Fatalf("files %v, want %d", names, tt.wantFiles)
			}
			total := 0
			for _, n := range names {
				fi, _ := os.Stat(n)
				// A batch may pass the cap by at most what was written in one go.
				if fi.Size() > maxSize+64<<10 {
					t.Errorf("%s is %d bytes, cap %d", n, fi.Size(), maxSize)
				}
				recs := readRecords(t, n)
				if len(recs) == 0 || recs[0].Proto != "xgw" {
					t.Errorf("%s does not start with the start note", n)
				}
				for _, r := range recs {
					if r.Proto == "sip" {
						total++
					}
				}
			}
			if tt.maxFiles > 1 && tt.records > 2 {
				if _, err := os.Stat(path + ".1"); err != nil {
					t.Errorf("no rotated file: %v", err)
				}
			}
			if tt.wantFiles == 1 && tt.records == 2 && total != 2 {
				t.Errorf("kept %d records, want 2", total)
			}
		})
	}
}

// rotatingSmall checks the writer alone: every file at most the cap when
// lines are written one by one.
func TestRotatingCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.jsonl")
	r, err := openRotating(path, 100, 3)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 39) + "\n")
	for i := 0; i < 10; i++ {
		if _, err := r.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	for _, n := range []string{path, path + ".1", path + ".2"} {
		fi, err := os.Stat(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if fi.Size() > 100 || fi.Size()%40 != 0 {
			t.Errorf("%s: %d bytes, want whole lines under 100", n, fi.Size())
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("%s.3 kept, want 3 files at most", path)
	}
}

// blockingWriter holds every write until released: a disk that stalls.
type blockingWriter struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
	first   bool
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	first := !w.first
	w.first = true
	w.mu.Unlock()
	if !first { // the start record goes through; later writes stall
		<-w.release
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func TestDropWhenFull(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	tr, err := Open(Options{Writer: w, Protocols: SIP, Buffer: 4, DropEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for i := 0; i < 200; i++ {
			tr.Trace(Event{Proto: SIP, Dir: In, Msg: []byte(sipMessage)})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Trace blocked while the writer was stalled")
	}
	dropped := tr.Dropped()
	// What got through is the channel's 4 plus the batch the stalled
	// writer holds (64 KiB of lines, records of ~450 bytes: 146 at most).
	if dropped < 200-4-146 {
		t.Errorf("dropped %d of 200 with a buffer of 4 and a stalled writer", dropped)
	}
	close(w.release)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	var note *Record
	var kept int
	for _, line := range strings.Split(strings.TrimSpace(w.buf.String()), "\n") {
		var r Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.Dropped > 0 {
			note = &r
		}
		if r.Proto == "sip" {
			kept++
		}
	}
	if note == nil || note.Dropped != dropped || !strings.Contains(note.Note, "trace records dropped") {
		t.Fatalf("drop note = %+v, want one counting %d", note, dropped)
	}
	if uint64(kept)+dropped != 200 {
		t.Errorf("kept %d + dropped %d != 200", kept, dropped)
	}
}

// TestDropBySize: a few large messages fill the byte budget before the
// record count does.
func TestDropBySize(t *testing.T) {
	w := &blockingWriter{release: make(chan struct{})}
	tr, err := Open(Options{Writer: w, Protocols: XMPP, Buffer: 1000, MaxQueued: 1 << 20, DropEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	big := []byte("<message><body>" + strings.Repeat("x", 256<<10) + "</body></message>")
	for i := 0; i < 40; i++ {
		tr.Trace(Event{Proto: XMPP, Dir: In, Msg: big})
	}
	// 1 MiB holds 3 of them queued, plus at most one in the writer's hands
	// and a batch it cannot flush.
	if d := tr.Dropped(); d < 30 {
		t.Errorf("dropped %d of 40 messages of 256 KiB with a 1 MiB budget", d)
	}
	close(w.release)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestParseProtocols(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    Proto
		wantErr string
	}{
		{"two", []string{"sip", "xmpp"}, SIP | XMPP, ""},
		{"all, mixed case", []string{"SIP", " xmpp", "dns"}, SIP | XMPP | DNS, ""},
		{"unknown", []string{"sip", "http"}, 0, `trace protocol "http": expected sip, xmpp or dns`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProtocols(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("= %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// BenchmarkHook is what a hook costs the relaying goroutine: off (a nil
// Tracer), and on (copy and hand-off; the writer goroutine redacts and
// writes to io.Discard meanwhile).
func BenchmarkHook(b *testing.B) {
	msg := []byte(sipMessage)
	b.Run("off", func(b *testing.B) {
		var tr *Tracer
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if tr.On(SIP) {
				tr.Trace(Event{Proto: SIP, Dir: In, Msg: msg})
			}
		}
	})
	b.Run("on", func(b *testing.B) {
		// A buffer for every record: the hand-off itself, no drops.
		tr, err := Open(Options{Writer: io.Discard, Protocols: SIP, Buffer: b.N + 1, MaxQueued: 1 << 40})
		if err != nil {
			b.Fatal(err)
		}
		defer tr.Close()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			tr.Trace(Event{Proto: SIP, Dir: In, Msg: msg})
		}
	})
	b.Run("on, writer behind", func(b *testing.B) {
		tr, err := Open(Options{Writer: io.Discard, Protocols: SIP})
		if err != nil {
			b.Fatal(err)
		}
		defer tr.Close()
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			tr.Trace(Event{Proto: SIP, Dir: In, Msg: msg})
		}
		b.StopTimer()
		b.ReportMetric(float64(tr.Dropped())/float64(b.N), "dropped/op")
	})
}

// BenchmarkWriter is the writer's work per record: redaction and JSON.
func BenchmarkWriter(b *testing.B) {
	tr := &Tracer{o: Options{Now: time.Now}}
	for _, c := range []struct {
		name string
		ev   Event
	}{
		{"sip", Event{Proto: SIP, Dir: In, Msg: []byte(sipMessage)}},
		{"xmpp", Event{Proto: XMPP, Dir: Out, Msg: []byte(`<message from='a@b' to='c@d' type='chat' id='x'><body>hello there</body><thread>t</thread></message>`)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				json.Marshal(tr.record(c.ev))
			}
		})
	}
}
