package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xgw-gateway/xgw/internal/testenv"
)

// Sipp is a sipp user agent running in the background until the test
// ends; every message it exchanges is logged to its message file.
type Sipp struct {
	messages string // sipp -message_file
}

// StartSippUAS runs sipp (Debian's sip-tester) with scenario (a path) as a
// UDP server on addr (IP:PORT) and stops it by PID when the test ends.
func StartSippUAS(t testing.TB, scenario, addr string) *Sipp {
	t.Helper()
	return StartSipp(t, scenario, addr)
}

// StartSipp runs sipp with scenario from addr (IP:PORT, UDP) and extra
// arguments (keys, -m, the remote address for a client scenario) until the
// test ends, when it is stopped by PID.
func StartSipp(t testing.TB, scenario, addr string, args ...string) *Sipp {
	t.Helper()
	bin := testenv.Binary(t, "sipp")
	ip, port, err := splitAddr(addr)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	u := &Sipp{messages: filepath.Join(dir, "messages.log")}
	cmd := exec.Command(bin, append([]string{"-sf", absPath(scenario), "-nostdin", "-t", "u1", "-i", ip, "-p", port,
		"-trace_msg", "-message_file", u.messages, "-trace_err", "-error_file", filepath.Join(dir, "errors.log")}, args...)...)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatalf("lab: start sipp %s: %v", filepath.Base(scenario), err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			data, _ := os.ReadFile(u.messages)
			t.Logf("sipp %s messages:\n%s", filepath.Base(scenario), data)
		}
	})
	return u
}

// WaitRequest returns the first request received with the given method
// whose text contains every substring (start line, headers and body).
func (u *Sipp) WaitRequest(ctx context.Context, method string, subs ...string) (string, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		data, _ := os.ReadFile(u.messages)
		for _, m := range SippMessages(data, "received") {
			if matchAll(m, method+" ", subs) {
				return m, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("lab: sipp received no %s containing %q: %w", method, subs, ctx.Err())
		case <-tick.C:
		}
	}
}

func matchAll(m, prefix string, subs []string) bool {
	if !strings.HasPrefix(m, prefix) {
		return false
	}
	for _, s := range subs {
		if !strings.Contains(m, s) {
			return false
		}
	}
	return true
}

// RunSippUAC runs one sipp client scenario once from local (IP:PORT) to
// remote over UDP, filling [key] with each key/value pair, and returns the
// first request it sent, as sent. The scenario's own expectations (its
// <recv> elements) decide success.
func RunSippUAC(t testing.TB, ctx context.Context, scenario, local, remote string, keys ...string) (string, error) {
	t.Helper()
	bin := testenv.Binary(t, "sipp")
	ip, port, err := splitAddr(local)
	if err != nil {
		return "", err
	}
	dir := t.TempDir()
	msgFile := filepath.Join(dir, "uac-messages.log")
	args := []string{"-sf", absPath(scenario), "-nostdin", "-m", "1", "-t", "u1", "-i", ip, "-p", port,
		"-timeout", "15s", "-timeout_error",
		"-trace_msg", "-message_file", msgFile, "-trace_err", "-error_file", filepath.Join(dir, "uac-errors.log")}
	for i := 0; i+1 < len(keys); i += 2 {
		args = append(args, "-key", keys[i], keys[i+1])
	}
	cmd := exec.CommandContext(ctx, bin, append(args, remote)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	msgs, _ := os.ReadFile(msgFile)
	if err != nil {
		return "", fmt.Errorf("lab: sipp %s to %s: %w\n%s\n--- messages\n%s", filepath.Base(scenario), remote, err, tail(out, 1500), msgs)
	}
	sent := SippMessages(msgs, "sent")
	if len(sent) == 0 {
		return "", fmt.Errorf("lab: sipp %s sent no request:\n%s", filepath.Base(scenario), msgs)
	}
	return sent[0], nil
}

// sippLogRe finds the messages of a sipp -message_file: each follows a line
// "UDP message received [N] bytes :" or "UDP message sent (N bytes):" and a
// blank line, and is exactly N bytes long.
var sippLogRe = regexp.MustCompile(`(?m)^UDP message (?:received \[(\d+)\] bytes :|sent \((\d+) bytes\):)\n\n`)

// SippMessages splits a sipp message log into the messages of one
// direction, "received" or "sent".
func SippMessages(data []byte, dir string) []string {
	group := 2 // submatch 1: received
	if dir == "sent" {
		group = 4 // submatch 2: sent
	}
	var out []string
	for _, loc := range sippLogRe.FindAllSubmatchIndex(data, -1) {
		if loc[group] < 0 {
			continue
		}
		n, _ := strconv.Atoi(string(data[loc[group]:loc[group+1]]))
		if start := loc[1]; start+n <= len(data) {
			out = append(out, string(data[start:start+n]))
		}
	}
	return out
}

// SIPBody returns a SIP message's body and its Content-Length header
// (-1 when absent).
func SIPBody(m string) (body string, contentLength int, err error) {
	head, body, ok := strings.Cut(m, "\r\n\r\n")
	if !ok {
		return "", -1, errors.New("lab: no end of headers in the SIP message")
	}
	contentLength = -1
	for _, line := range strings.Split(head, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		if k = strings.TrimSpace(k); strings.EqualFold(k, "Content-Length") || k == "l" {
			contentLength, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return body, contentLength, nil
}

func splitAddr(addr string) (ip, port string, err error) {
	ip, port, ok := strings.Cut(addr, ":")
	if !ok || ip == "" || port == "" {
		return "", "", fmt.Errorf("lab: %q: want IP:PORT", addr)
	}
	return ip, port, nil
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func tail(b []byte, n int) []byte { return b[max(0, len(b)-n):] }
