package xmpp

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/gateway/trace"
	"github.com/xgw-gateway/xgw/internal/certtest"
)

// TestTrace federates two servers, each tracing to its own file, and reads
// what they recorded: every header and element of the negotiation in
// clear XML (after TLS), labelled with the stream ID and domains, with the
// dialback key, the SASL payload and the message body hidden.
func TestTrace(t *testing.T) {
	trusted := certtest.NewCA(t, "xgw test CA")
	tests := []struct {
		name   string
		tls    bool
		secret string // the element whose payload must be hidden
		want   []string
	}{
		{"dialback", false, "<db:result from='a.test' to='b.test'>[", []string{"<stream:stream", "<stream:features>", "type='valid'"}},
		{"STARTTLS and SASL EXTERNAL", true, "mechanism='EXTERNAL'>[", []string{"<starttls", "<proceed", "<success"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f := newFed(t)
			tracers := map[string]*trace.Tracer{}
			opts := func(domain, partner string) peerOpts {
				tr, err := trace.Open(trace.Options{File: filepath.Join(dir, domain+".jsonl"), Protocols: trace.XMPP})
				if err != nil {
					t.Fatal(err)
				}
				tracers[domain] = tr
				o := peerOpts{domains: []string{domain}, partners: []config.Partner{{Domain: partner, Auth: "dialback"}},
					mod: func(c *Config) { c.Tracer = tr }}
				if tt.tls {
					o.tls = tlsFor(t, trusted, domain, trusted)
					o.partners[0].Auth = "tls"
				}
				return o
			}
			a, b := f.add(opts("a.test", "b.test")), f.add(opts("b.test", "a.test"))
			if err := a.srv.Send(context.Background(), mustStanza(t, `<message from='alice@a.test/sip' to='bob@b.test' type='chat' id='m1'><body>a secret</body><thread>t-1</thread></message>`)); err != nil {
				t.Fatal(err)
			}
			b.recv(t)
			out := streamOf(t, a.srv, "out")
			a.srv.Shutdown(context.Background())
			b.srv.Shutdown(context.Background())
			for _, tr := range tracers {
				if err := tr.Close(); err != nil {
					t.Fatal(err)
				}
			}

			recsA := readTrace(t, filepath.Join(dir, "a.test.jsonl"))
			all := ""
			var stanzaOut, header *trace.Record
			for i, r := range recsA {
				all += r.Msg + "\n"
				if r.Proto != "xmpp" {
					continue
				}
				if !strings.HasPrefix(r.Msg, "<") {
					t.Errorf("record %d is not XML (ciphertext?): %.60q", i, r.Msg)
				}
				if r.Peer == "" || r.Local != "a.test" || r.Remote != "b.test" {
					t.Errorf("record %d labelled peer=%q local=%q remote=%q", i, r.Peer, r.Local, r.Remote)
				}
				if r.Dir == trace.Out && strings.HasPrefix(r.Msg, "<message") {
					stanzaOut = &recsA[i]
				}
				if r.Dir == trace.In && strings.Contains(r.Msg, "<stream:stream") && r.Peer == out.Peer {
					header = &recsA[i] // the last header b sent on a's outbound stream
				}
			}
			for _, w := range append(tt.want, tt.secret) {
				if !strings.Contains(all, w) {
					t.Errorf("a's trace lacks %q:\n%s", w, all)
				}
			}
			for _, leak := range []string{"a secret", "YS50ZXN0"} { // the body; base64 of a.test
				if strings.Contains(all, leak) {
					t.Errorf("a's trace shows %q in clear", leak)
				}
			}
			if stanzaOut == nil || !strings.Contains(stanzaOut.Msg, "<body>[8 bytes redacted]</body>") || stanzaOut.Thread != "t-1" {
				t.Fatalf("message out = %+v", stanzaOut)
			}
			// The stream ID of an initiated stream is the one in b's header.
			if header == nil || attrOf(header.Msg, "<stream:stream", "id") != stanzaOut.Stream || stanzaOut.Stream == "" {
				t.Errorf("message out on stream %q, b's header %+v", stanzaOut.Stream, header)
			}

			var stanzaIn *trace.Record
			for _, r := range readTrace(t, filepath.Join(dir, "b.test.jsonl")) {
				if r.Dir == trace.In && strings.HasPrefix(r.Msg, "<message") {
					stanzaIn = &r
				}
			}
			if stanzaIn == nil || stanzaIn.Stream != stanzaOut.Stream || stanzaIn.Local != "b.test" || stanzaIn.Remote != "a.test" {
				t.Errorf("b's message in = %+v, want stream %s, b.test <- a.test", stanzaIn, stanzaOut.Stream)
			}
		})
	}
}

func readTrace(t *testing.T, path string) []trace.Record {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var recs []trace.Record
	if err := trace.Read(fh, trace.Filter{}, func(r trace.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	return recs
}
