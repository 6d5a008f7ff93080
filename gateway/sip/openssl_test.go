package sip_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/internal/certtest"
	"github.com/xgw-gateway/xgw/internal/testenv"
)

// lockedBuffer lets the test read what openssl printed so far.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// OpenSSL's s_client, an independent TLS stack, plays the Edge: with the
// Edge's certificate it gets the gateway's 200 to OPTIONS after verifying
// the gateway's certificate for its name; with another certificate the
// gateway refuses the handshake and logs the subject.
func TestOpenSSLMutualTLS(t *testing.T) {
	bin := testenv.Binary(t, "openssl")
	p := newPKI(t)
	server := startEdge(t, p, "tls", p.edge, p.edge)
	server.serve()
	_, logs, _ := gateway(t, p, server, newHandler(), nil)

	tests := []struct {
		name   string
		client *certtest.Pair
		want   string // in openssl's output
	}{
		{"edge certificate", p.edge, "SIP/2.0 200 OK"},
		{"rogue certificate", p.rogue, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cert, key, ca := tt.client.WriteFiles(t, dir, p.ca)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "s_client", "-connect", server.gwAddr,
				"-servername", gwName, "-verify_hostname", gwName, "-verify_return_error",
				"-CAfile", ca, "-cert", cert, "-key", key, "-quiet", "-ign_eof")
			cmd.Dir = dir
			cmd.Stdin = strings.NewReader(options("ossl1", "openssl-"+filepath.Base(dir)))
			out := &lockedBuffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() {
				cmd.Wait()
				close(exited)
			}()
			defer func() {
				cmd.Process.Kill() // only the s_client this test started
				<-exited
			}()
			if tt.want != "" {
				waitFor(t, "the gateway's answer through openssl", func() bool { return strings.Contains(out.String(), tt.want) })
				return
			}
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				t.Fatalf("openssl still connected with a refused certificate:\n%s", out.String())
			}
			if strings.Contains(out.String(), "SIP/2.0") {
				t.Errorf("a refused client got a SIP answer:\n%s", out.String())
			}
			waitFor(t, "the refusal log line", func() bool {
				return strings.Contains(logs.String(), "refused TLS client") && strings.Contains(logs.String(), "CN=rogue.test")
			})
		})
	}
}
