package translate

import (
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"
)

// FuzzMessageFromSIP: whatever the Edge sends, translation returns an error
// or a message whose text is UTF-8 that XML can carry, and whose stanza
// parses back to the same body.
func FuzzMessageFromSIP(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(goldenDir, "sip-*.sip"))
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	m := testMapper(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		parsed, err := sip.ParseMessage(raw)
		if err != nil {
			return
		}
		req, ok := parsed.(*sip.Request)
		if !ok {
			return
		}
		msg, err := m.MessageFromSIP(req)
		if err != nil {
			return
		}
		for _, s := range []string{msg.Body, msg.Subject, msg.Thread} {
			if !utf8.ValidString(s) || checkXMLChars(s) != nil {
				t.Fatalf("unsafe text %q", s)
			}
		}
		back, err := DecodeMessage(msg.AppendXML(nil))
		if err != nil {
			t.Fatalf("own stanza does not parse: %v", err)
		}
		if back.Body != msg.Body || back.Subject != msg.Subject || back.Thread != msg.Thread {
			t.Fatalf("stanza round trip changed text: %+v vs %+v", back, msg)
		}
	})
}

// FuzzPresenceFromPIDF: hostile PIDF never panics; a Presence that comes out
// is one of the states the mapping defines.
func FuzzPresenceFromPIDF(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(goldenDir, "*.pidf"))
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := PresenceFromPIDF(raw)
		if err != nil {
			return
		}
		switch p.Show {
		case "", "away", "xa", "dnd":
		default:
			t.Fatalf("show %q", p.Show)
		}
		if !utf8.ValidString(p.Status) || checkXMLChars(p.Status) != nil {
			t.Fatalf("unsafe status %q", p.Status)
		}
	})
}

// FuzzEscape: Unescape undoes Escape for every user name Escape accepts.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"john smith", `a\5cb`, `c:\net`, "@@", `\20`, "日本 語"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Escape(s)
		if err != nil {
			return
		}
		if got := Unescape(e); got != s {
			t.Fatalf("Unescape(Escape(%q)) = %q via %q", s, got, e)
		}
	})
}
