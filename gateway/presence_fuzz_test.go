package gateway

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gosip "github.com/emiago/sipgo/sip"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xgw-gateway/xgw/gateway/translate"
)

// FuzzReadNotify: a hostile NOTIFY (any Subscription-State, Content-Type
// and PIDF body) gets 200, 400 or 415 with a documented error, and the
// stanzas for X are well-formed, addressed from U to X, and none when we
// were leaving.
func FuzzReadNotify(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "presence", "notify", "*.sip"))
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, false, false)
		f.Add(raw, true, false)
	}
	pair := presencePair{x: jid.MustParse("bob@xmpp.test"), u: jid.MustParse("alice@litware.test")}
	f.Fuzz(func(t *testing.T, raw []byte, told, leaving bool) {
		msg, err := gosip.NewParser().ParseSIP(raw)
		if err != nil {
			return
		}
		req, ok := msg.(*gosip.Request)
		if !ok {
			return
		}
		r := readNotify(req, pair, told, leaving)
		switch r.Status {
		case 200:
			if r.Cause != nil {
				t.Fatalf("200 with cause %v", r.Cause)
			}
		case 400, 415:
			var be *translate.BodyError
			if !errors.As(r.Cause, &be) && !errors.Is(r.Cause, translate.ErrUnsupportedMedia) {
				t.Fatalf("answer %d with undocumented cause %T: %v", r.Status, r.Cause, r.Cause)
			}
		default:
			t.Fatalf("answer %d, expected 200, 400 or 415", r.Status)
		}
		if leaving && len(r.Stanzas) > 0 {
			t.Fatalf("%d stanzas for X after it unsubscribed", len(r.Stanzas))
		}
		for _, p := range r.Stanzas {
			if !p.From.Equal(pair.u) || !p.To.Equal(pair.x) {
				t.Fatalf("stanza from %s to %s, expected %s to %s", p.From, p.To, pair.u, pair.x)
			}
			switch p.Type {
			case stanza.AvailablePresence, stanza.UnavailablePresence, stanza.SubscribedPresence, stanza.UnsubscribedPresence:
			default:
				t.Fatalf("presence type %q", p.Type)
			}
			oneElement(t, string(p.AppendXML(nil)))
		}
	})
}

// oneElement fails unless s is exactly one strictly well-formed element.
func oneElement(t *testing.T, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if roots != 1 || depth != 0 {
				t.Fatalf("%d elements (depth %d) in %q", roots, depth, s)
			}
			return
		}
		if err != nil {
			t.Fatalf("stanza not well-formed: %v\n%q", err, s)
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 {
				t.Fatalf("text outside the stanza in %q", s)
			}
		}
	}
}
