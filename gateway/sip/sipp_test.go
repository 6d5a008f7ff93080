package sip_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	gwsip "github.com/xgw-gateway/xgw/gateway/sip"
	"github.com/xgw-gateway/xgw/internal/testenv"
)

// freePort finds a TCP port on 127.0.0.1 nobody uses right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// runSipp runs one sipp scenario against addr and fails the test with
// sipp's own logs when the scenario fails.
func runSipp(t *testing.T, bin, scenario string, port int, service, addr string) {
	t.Helper()
	dir := t.TempDir()
	sf, err := filepath.Abs(filepath.Join("testdata", "sipp", scenario))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-sf", sf, "-nostdin", "-m", "1",
		"-t", "t1", "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-s", service,
		"-timeout", "15s", "-timeout_error",
		"-trace_msg", "-message_file", filepath.Join(dir, "messages.log"),
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		addr)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		msgs, _ := os.ReadFile(filepath.Join(dir, "messages.log"))
		errs, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
		t.Fatalf("sipp %s: %v\n--- output (tail)\n%s\n--- errors\n%s\n--- messages\n%s", scenario, err, tail(string(out), 2000), errs, msgs)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// sipp (sip-tester), a third-party SIP implementation, talks to the
// endpoint over TCP: MESSAGE delivered and refused, and a presence
// subscription created, notified and ended. Debian's sipp is built
// without TLS, so TLS interop is left to the Kamailio harness.
func TestSippInterop(t *testing.T) {
	bin := testenv.Binary(t, "sipp")
	p := newPKI(t)
	ed := startEdge(t, p, "tcp", nil, nil)
	ed.serve()
	sippPort := freePort(t)
	h := newHandler()
	h.message = func(_ context.Context, req *sip.Request) (int, string) {
		if req.Recipient.User == "nobody" {
			return 404, "No Such XMPP User"
		}
		return 200, ""
	}
	ep, _, _ := gateway(t, p, ed, h, func(c *gwsip.Config) {
		// sipp is the Edge: in-dialog NOTIFYs go to it.
		c.Edge = gwsip.Edge{Host: "127.0.0.1", Port: sippPort, Transport: "tcp"}
	})
	addr := ep.Addr().String()

	t.Run("MESSAGE", func(t *testing.T) {
		runSipp(t, bin, "message.xml", sippPort, "romeo", addr)
		got := next(t, h.messages, "MESSAGE from sipp")
		if body := strings.TrimSpace(string(got.req.Body())); body != "Hello from sipp, Привет 世界" {
			t.Errorf("body %q", body)
		}
		if second := next(t, h.messages, "second MESSAGE"); second.req.Recipient.User != "nobody" {
			t.Errorf("second MESSAGE to %s", second.req.Recipient.String())
		}
	})
	t.Run("SUBSCRIBE", func(t *testing.T) {
		runSipp(t, bin, "subscribe.xml", sippPort, "romeo", addr)
		if c := next(t, h.subscribes, "SUBSCRIBE from sipp"); c.change != gwsip.ChangeNew || c.sub.RemoteURI != "sip:alice@litware.test" {
			t.Errorf("first call %v %+v", c.change, c.sub)
		}
		if c := next(t, h.subscribes, "unsubscribe from sipp"); c.change != gwsip.ChangeUnsubscribe {
			t.Errorf("second call %v", c.change)
		}
		if n := len(ep.Subscriptions()); n != 0 {
			t.Errorf("%d dialogs left after sipp unsubscribed", n)
		}
	})
}
