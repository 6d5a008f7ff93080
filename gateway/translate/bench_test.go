package translate

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"

	"github.com/emiago/sipgo/sip"
	"mellium.im/xmpp/stanza"
)

// The benchmarks use the golden fixtures, so they measure what the tests check.

func benchRequest(b *testing.B, name string) ([]byte, *sip.Request) {
	b.Helper()
	raw, err := os.ReadFile(filepath.Join(goldenDir, name))
	if err != nil {
		b.Fatal(err)
	}
	m, err := sip.ParseMessage(raw)
	if err != nil {
		b.Fatal(err)
	}
	return raw, m.(*sip.Request)
}

// BenchmarkSIPToXMPP: a parsed SIP MESSAGE -> Message -> stanza bytes.
func BenchmarkSIPToXMPP(b *testing.B) {
	for _, name := range []string{"sip-utf8-multiscript.sip", "sip-iso-8859-1.sip", "sip-cpim.sip"} {
		b.Run(name, func(b *testing.B) {
			m := testMapper(b)
			_, req := benchRequest(b, name)
			buf := make([]byte, 0, 1024)
			b.ReportAllocs()
			for b.Loop() {
				msg, err := m.MessageFromSIP(req)
				if err != nil {
					b.Fatal(err)
				}
				buf = msg.AppendXML(buf[:0])
			}
		})
	}
}

// BenchmarkSIPToXMPPWithParse adds sipgo's parse of the wire text, i.e. the
// whole CPU cost of one inbound MESSAGE except the TLS read.
func BenchmarkSIPToXMPPWithParse(b *testing.B) {
	m := testMapper(b)
	raw, _ := benchRequest(b, "sip-utf8-multiscript.sip")
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		parsed, err := sip.ParseMessage(raw)
		if err != nil {
			b.Fatal(err)
		}
		msg, err := m.MessageFromSIP(parsed.(*sip.Request))
		if err != nil {
			b.Fatal(err)
		}
		buf = msg.AppendXML(buf[:0])
	}
}

// BenchmarkXMPPToSIP: a decoded Message -> SIPMessage -> sipgo request wire text.
func BenchmarkXMPPToSIP(b *testing.B) {
	m := testMapper(b)
	raw, err := os.ReadFile(filepath.Join(goldenDir, "xmpp-multiscript.xml"))
	if err != nil {
		b.Fatal(err)
	}
	msg, err := DecodeMessage(raw)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("translate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.MessageToSIP(&msg); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("translate+request", func(b *testing.B) {
		var w bytes.Buffer
		b.ReportAllocs()
		for b.Loop() {
			sm, err := m.MessageToSIP(&msg)
			if err != nil {
				b.Fatal(err)
			}
			w.Reset()
			sm.Request("xgwtag").StringWrite(&w)
		}
	})
	// What gateway/xmpp's Stanza gives: attributes parsed, payload as Inner.
	inner := msg.AppendInner(nil)
	head := stanza.Message{ID: msg.ID, From: msg.From, To: msg.To, Type: msg.Type}
	b.Run("inner-scanner+translate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			got, err := MessageFromInner(head, inner)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := m.MessageToSIP(&got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("inner-encoding-xml+translate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			got, err := MessageFromStanza(head, xml.NewDecoder(bytes.NewReader(inner)))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := m.MessageToSIP(&got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode+translate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			msg, err := DecodeMessage(raw)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := m.MessageToSIP(&msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}
