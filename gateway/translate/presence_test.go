package translate

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

const pidfHead = `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:alice@litware.example">`

func TestPresenceFromPIDF(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		typ    stanza.PresenceType
		show   string
		status string
	}{
		{"open", pidfHead + `<tuple id="a"><status><basic>open</basic></status></tuple></presence>`, "", "", ""},
		{"closed", pidfHead + `<tuple id="a"><status><basic>closed</basic></status><note>Gone home</note></tuple></presence>`, stanza.UnavailablePresence, "", "Gone home"},
		{"no tuples is unavailable", pidfHead + `</presence>`, stanza.UnavailablePresence, "", ""},
		{"any open tuple wins", pidfHead + `<tuple id="a"><status><basic>closed</basic></status></tuple><tuple id="b"><status><basic>open</basic></status></tuple></presence>`, "", "", ""},
		{"rpid away", pidfHead + `<tuple id="a"><status><basic>open</basic></status></tuple><dm:person id="p"><rpid:activities><rpid:away/></rpid:activities></dm:person></presence>`, "", "away", ""},
		{"rpid busy is dnd", pidfHead + `<tuple id="a"><status><basic>open</basic></status></tuple><dm:person id="p"><rpid:activities><rpid:busy/></rpid:activities><dm:note>In a meeting — 会議中</dm:note></dm:person></presence>`, "", "dnd", "In a meeting — 会議中"},
		{"vacation is xa", pidfHead + `<tuple id="a"><status><basic>open</basic></status></tuple><dm:person id="p"><rpid:activities><rpid:vacation/></rpid:activities></dm:person></presence>`, "", "xa", ""},
		{"most restrictive activity", pidfHead + `<tuple id="a"><status><basic>open</basic></status></tuple><dm:person id="p"><rpid:activities><rpid:lunch/><rpid:on-the-phone/></rpid:activities></dm:person></presence>`, "", "dnd", ""},
		{"unknown activity stays available", pidfHead + `<tuple id="a"><status><basic>open</basic></status></tuple><dm:person id="p"><rpid:activities><rpid:playing/></rpid:activities></dm:person></presence>`, "", "", ""},
		{"person note preferred", pidfHead + `<tuple id="a"><status><basic>open</basic></status><note>tuple</note></tuple><dm:person id="p"><dm:note>person</dm:note></dm:person></presence>`, "", "", "person"},
		{"other prefixes", `<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf" xmlns:r="urn:ietf:params:xml:ns:pidf:rpid" xmlns:d="urn:ietf:params:xml:ns:pidf:data-model" entity="pres:a@b"><p:tuple id="x"><p:status><p:basic>open</p:basic></p:status></p:tuple><d:person><r:activities><r:away/></r:activities></d:person></p:presence>`, "", "away", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := PresenceFromPIDF([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if p.Type != tt.typ || p.Show != tt.show || p.Status != tt.status {
				t.Errorf("got type=%q show=%q status=%q, want %q %q %q", p.Type, p.Show, p.Status, tt.typ, tt.show, tt.status)
			}
		})
	}
}

func TestPresenceFromPIDFHostile(t *testing.T) {
	billion := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>` +
		`<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple id="a"><status><basic>open</basic></status><note>&lol2;</note></tuple></presence>`
	external := `<?xml version="1.0"?><!DOCTYPE p SYSTEM "file:///etc/passwd"><presence xmlns="urn:ietf:params:xml:ns:pidf"/>`
	tests := []struct {
		name string
		body []byte
		err  error
		want string
	}{
		{"entity expansion", []byte(billion), ErrBadPIDF, "DOCTYPE"},
		{"external DTD", []byte(external), ErrBadPIDF, "DOCTYPE"},
		{"undefined entity", []byte(pidfHead + `<tuple id="a"><note>&xxe;</note></tuple></presence>`), ErrBadPIDF, "malformed"},
		{"oversized", append([]byte(pidfHead+`<tuple id="a"><note>`), bytes.Repeat([]byte("x"), MaxPIDF)...), ErrTooLarge, "bytes"},
		{"not xml", []byte("open"), ErrBadPIDF, "malformed"},
		{"mismatched tags", []byte(pidfHead + `<tuple id="a"></note></presence>`), ErrBadPIDF, "malformed"},
		{"control char ref", []byte(pidfHead + `<tuple id="a"><status><basic>open</basic></status><note>&#1;</note></tuple></presence>`), ErrBadPIDF, "malformed"},
		{"bad basic", []byte(pidfHead + `<tuple id="a"><status><basic>maybe</basic></status></tuple></presence>`), ErrBadPIDF, "open or closed"},
		{"latin1 declared", []byte(`<?xml version="1.0" encoding="ISO-8859-1"?><presence xmlns="urn:ietf:params:xml:ns:pidf"/>`), ErrBadPIDF, "ISO-8859-1"},
		{"wrong root", []byte(`<presence xmlns="jabber:client"/>`), ErrBadPIDF, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := PresenceFromPIDF(tt.body)
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tt.err, tt.want)
			}
		})
	}
}

func TestPIDFFromPresence(t *testing.T) {
	m := testMapper(t)
	juliet := jid.MustParse("juliet@xmpp.example/balcony")
	for _, row := range PresenceMapping {
		t.Run("show="+row.Show, func(t *testing.T) {
			body, err := m.PIDFFromPresence(&Presence{From: juliet, Show: row.Show, Status: "Ça & <va> ☂"})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(body, []byte(`entity="sip:juliet@xmpp.example"`)) {
				t.Errorf("entity missing: %s", body)
			}
			back, err := PresenceFromPIDF(body)
			if err != nil {
				t.Fatalf("our own PIDF does not parse: %v\n%s", err, body)
			}
			wantShow := map[string]string{"": "", "chat": "", "away": "away", "xa": "away", "dnd": "dnd"}[row.Show]
			if back.Type != stanza.AvailablePresence || back.Show != wantShow || back.Status != "Ça & <va> ☂" {
				t.Errorf("round trip = %+v, want show %q", back, wantShow)
			}
		})
	}
	t.Run("unavailable", func(t *testing.T) {
		body, err := m.PIDFFromPresence(&Presence{From: juliet, Type: stanza.UnavailablePresence})
		if err != nil {
			t.Fatal(err)
		}
		back, err := PresenceFromPIDF(body)
		if err != nil || back.Type != stanza.UnavailablePresence {
			t.Fatalf("round trip = %+v, %v", back, err)
		}
	})
	errTests := []struct {
		name string
		p    Presence
		err  error
	}{
		{"bad show", Presence{From: juliet, Show: "sleepy"}, ErrBadBody},
		{"subscribe is not a status", Presence{From: juliet, Type: stanza.SubscribePresence}, ErrUnsupportedType},
		{"from our side", Presence{From: jid.MustParse("alice@litware.example")}, ErrUnmappable},
		{"control char in status", Presence{From: juliet, Status: "a\x02"}, ErrBadBody},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := m.PIDFFromPresence(&tt.p); !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
		})
	}
}

// TestGoldenPIDF: testdata/translate/pidf-*.xml (NOTIFY bodies) -> presence
// stanza in pidf-*.presence.xml, and an XMPP presence -> PIDF.
func TestGoldenPIDF(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(goldenDir, "pidf-*.pidf"))
	if len(files) == 0 {
		t.Fatal("no pidf-*.pidf fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			p, err := PresenceFromPIDF(body)
			if err != nil {
				t.Fatal(err)
			}
			p.From = jid.MustParse("alice@litware.example")
			p.To = jid.MustParse("juliet@xmpp.example")
			golden(t, strings.TrimSuffix(f, ".pidf")+".xml", append(p.AppendXML(nil), '\n'))
		})
	}
	t.Run("presence to pidf", func(t *testing.T) {
		m := testMapper(t)
		raw := []byte(`<presence xmlns="jabber:server" from="juliet@xmpp.example/balcony" to="alice@litware.example" xml:lang="en"><show>dnd</show><status xml:lang="de">Besprechung</status><status>In a meeting</status><c xmlns="http://jabber.org/protocol/caps" hash="sha-1" node="n" ver="v"/></presence>`)
		p, err := decodePresence(raw)
		if err != nil {
			t.Fatal(err)
		}
		body, err := m.PIDFFromPresence(&p)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, filepath.Join(goldenDir, "presence-dnd.pidf"), body)
	})
}

func decodePresence(raw []byte) (Presence, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	tok, err := d.Token()
	if err != nil {
		return Presence{}, err
	}
	s, err := stanza.NewPresence(tok.(xml.StartElement))
	if err != nil {
		return Presence{}, err
	}
	return PresenceFromStanza(s, d)
}

func TestSubscriptionState(t *testing.T) {
	tests := []struct {
		in        string
		want      SubscriptionState
		typ       stanza.PresenceType
		ok, resub bool
		roundTrip string
	}{
		{"active;expires=3600", SubscriptionState{State: "active", Expires: 3600, RetryAfter: -1}, stanza.SubscribedPresence, true, false, "active;expires=3600"},
		{"pending", SubscriptionState{State: "pending", Expires: -1, RetryAfter: -1}, "", false, false, "pending"},
		{"terminated;reason=rejected", SubscriptionState{State: "terminated", Reason: "rejected", Expires: -1, RetryAfter: -1}, stanza.UnsubscribedPresence, true, false, "terminated;reason=rejected"},
		{"terminated;reason=noresource", SubscriptionState{State: "terminated", Reason: "noresource", Expires: -1, RetryAfter: -1}, stanza.UnsubscribedPresence, true, false, "terminated;reason=noresource"},
		{"terminated", SubscriptionState{State: "terminated", Expires: -1, RetryAfter: -1}, stanza.UnsubscribedPresence, true, false, "terminated"},
		{"Terminated ; Reason=Timeout", SubscriptionState{State: "terminated", Reason: "timeout", Expires: -1, RetryAfter: -1}, "", false, true, "terminated;reason=timeout"},
		{"terminated;reason=probation;retry-after=30", SubscriptionState{State: "terminated", Reason: "probation", Expires: -1, RetryAfter: 30}, "", false, true, "terminated;reason=probation;retry-after=30"},
		{"terminated;reason=deactivated", SubscriptionState{State: "terminated", Reason: "deactivated", Expires: -1, RetryAfter: -1}, "", false, true, "terminated;reason=deactivated"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := ParseSubscriptionState(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if s != tt.want {
				t.Fatalf("parsed %+v, want %+v", s, tt.want)
			}
			if s.String() != tt.roundTrip {
				t.Errorf("String() = %q, want %q", s.String(), tt.roundTrip)
			}
			typ, ok, resub := PresenceTypeForNotify(s)
			if typ != tt.typ || ok != tt.ok || resub != tt.resub {
				t.Errorf("PresenceTypeForNotify = %q %v %v, want %q %v %v", typ, ok, resub, tt.typ, tt.ok, tt.resub)
			}
		})
	}
	for _, bad := range []string{"", "open", "active;expires=soon", "active;expires=-5"} {
		t.Run("bad "+bad, func(t *testing.T) {
			if _, err := ParseSubscriptionState(bad); !errors.Is(err, ErrBadBody) {
				t.Errorf("err = %v, want ErrBadBody", err)
			}
		})
	}
}

func TestSubscriptionActions(t *testing.T) {
	tests := []struct {
		typ      stanza.PresenceType
		method   sip.RequestMethod
		inDialog bool
		expires  int
		state    string
	}{
		{stanza.SubscribePresence, sip.SUBSCRIBE, false, DefaultExpires, ""},
		{stanza.UnsubscribePresence, sip.SUBSCRIBE, true, 0, ""},
		{stanza.ProbePresence, sip.SUBSCRIBE, false, 0, ""},
		{stanza.SubscribedPresence, sip.NOTIFY, true, 0, "active"},
		{stanza.UnsubscribedPresence, sip.NOTIFY, true, 0, "terminated;reason=rejected"},
		{stanza.AvailablePresence, sip.NOTIFY, true, 0, "active"},
		{stanza.UnavailablePresence, sip.NOTIFY, true, 0, "active"},
	}
	for _, tt := range tests {
		t.Run("xmpp "+string(tt.typ), func(t *testing.T) {
			a, err := SIPActionFor(tt.typ)
			if err != nil {
				t.Fatal(err)
			}
			if a.Method != tt.method || a.InDialog != tt.inDialog || a.Expires != tt.expires || (a.Method == sip.NOTIFY && a.State.String() != tt.state) {
				t.Errorf("SIPActionFor(%q) = %+v", tt.typ, a)
			}
		})
	}
	if _, err := SIPActionFor(stanza.ErrorPresence); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("error presence: err = %v", err)
	}

	subTests := []struct {
		name     string
		expires  int
		inDialog bool
		typ      stanza.PresenceType
		ok       bool
	}{
		{"new subscription", 3600, false, stanza.SubscribePresence, true},
		{"refresh", 3600, true, "", false},
		{"unsubscribe", 0, true, stanza.UnsubscribePresence, true},
		{"fetch", 0, false, stanza.ProbePresence, true},
	}
	for _, tt := range subTests {
		t.Run("sip "+tt.name, func(t *testing.T) {
			typ, ok := PresenceTypeForSubscribe(tt.expires, tt.inDialog)
			if typ != tt.typ || ok != tt.ok {
				t.Errorf("PresenceTypeForSubscribe(%d, %v) = %q %v", tt.expires, tt.inDialog, typ, ok)
			}
		})
	}
}
