package translate

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"mellium.im/xmpp/jid"
)

func testMapper(t testing.TB) *Mapper {
	t.Helper()
	m, err := NewMapper([]string{"litware.example", "Contoso.Example"}, []string{"xmpp.example", "münchen.example"}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustURI(t testing.TB, s string) *sip.Uri {
	t.Helper()
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		t.Fatalf("ParseUri(%q): %v", s, err)
	}
	return &u
}

func TestUnescape(t *testing.T) {
	tests := []struct{ in, want string }{
		{`ab\40c`, "ab@c"},
		{`john\20smith`, "john smith"},
		{`abc\40d`, "abc@d"},
		{`\40start`, "@start"},
		{`end\40`, "end@"},
		{`d\27artagnan`, "d'artagnan"},
		{`c\3a\5cnet`, `c:\net`},
		{`\5c5c`, `\5c`},
		{`no\escape`, `no\escape`},
		{`upper\2F`, `upper\2F`}, // XEP-0106 escapes are lower-case hex
		{`short\4`, `short\4`},
		{`trailing\`, `trailing\`},
		{`not\41`, `not\41`}, // 0x41 'A' is not an escapable character
		{`plain`, "plain"},
		{`日本\20語`, "日本 語"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := Unescape(tt.in); got != tt.want {
				t.Errorf("Unescape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestEscape(t *testing.T) {
	tests := []struct {
		in, want string
		err      string
	}{
		{in: "john smith", want: `john\20smith`},
		{in: "ab@c", want: `ab\40c`},
		{in: `"&'/:<>@`, want: `\22\26\27\2f\3a\3c\3e\40`},
		{in: `c:\net`, want: `c\3a\net`},
		{in: `a\5cb`, want: `a\5c5cb`}, // backslash that would read as an escape
		{in: "plain", want: "plain"},
		{in: " lead", err: "begins or ends with a space"},
		{in: "trail ", err: "begins or ends with a space"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Escape(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Escape(%q) error = %v, want %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Escape(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			if back := Unescape(got); back != tt.in {
				t.Errorf("Unescape(Escape(%q)) = %q", tt.in, back)
			}
		})
	}
}

func TestJIDFromURI(t *testing.T) {
	m := testMapper(t)
	tests := []struct {
		name string
		uri  string
		side Side
		want string
		err  error
		msg  string
	}{
		{name: "plain", uri: "sip:alice@litware.example", side: SideSIP, want: "alice@litware.example"},
		{name: "sips and port dropped", uri: "sips:alice@litware.example:5061;transport=tls", side: SideSIP, want: "alice@litware.example"},
		{name: "case folded", uri: "sip:Alice.Smith@LITWARE.example", side: SideSIP, want: "alice.smith@litware.example"},
		{name: "configured with capitals", uri: "sip:bob@contoso.example", side: SideSIP, want: "bob@contoso.example"},
		{name: "percent space escaped", uri: "sip:john%20smith@litware.example", side: SideSIP, want: `john\20smith@litware.example`},
		{name: "apostrophe", uri: "sip:o'hara@litware.example", side: SideSIP, want: `o\27hara@litware.example`},
		{name: "slash and ampersand", uri: "sip:sales/emea&co@litware.example", side: SideSIP, want: `sales\2femea\26co@litware.example`},
		{name: "escaped at", uri: "sip:a%40b@litware.example", side: SideSIP, want: `a\40b@litware.example`},
		{name: "utf8 user", uri: "sip:%C3%A9lodie@litware.example", side: SideSIP, want: "élodie@litware.example"},
		{name: "cyrillic user", uri: "sip:%D0%98%D0%B2%D0%B0%D0%BD@litware.example", side: SideSIP, want: "иван@litware.example"},
		{name: "gruu to resource", uri: "sip:alice@litware.example;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6", side: SideSIP, want: "alice@litware.example/urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"},
		{name: "gruu percent decoded", uri: "sip:alice@litware.example;gr=Home%20PC", side: SideSIP, want: "alice@litware.example/Home PC"},
		{name: "microsoft gruu", uri: "sip:alice@litware.example;opaque=user:epid:qIIWS2j5AVeD_HxnQdxmlwAA;gruu", side: SideSIP, want: "alice@litware.example/user:epid:qIIWS2j5AVeD_HxnQdxmlwAA"},
		{name: "opaque without gruu is not an instance", uri: "sip:alice@litware.example;opaque=x", side: SideSIP, want: "alice@litware.example"},
		{name: "xmpp partner", uri: "sip:juliet@xmpp.example", side: SideXMPP, want: "juliet@xmpp.example"},
		{name: "idn partner", uri: "sip:romeo@xn--mnchen-3ya.example", side: SideXMPP, want: "romeo@münchen.example"},

		{name: "unknown domain", uri: "sip:eve@evil.example", side: SideXMPP, err: ErrUnknownDomain, msg: "not served"},
		{name: "wrong side", uri: "sip:alice@litware.example", side: SideXMPP, err: ErrUnmappable, msg: "is a SIP domain"},
		{name: "ip host", uri: "sip:alice@192.0.2.1", side: SideSIP, err: ErrUnmappable, msg: "IP address"},
		{name: "no user", uri: "sip:litware.example", side: SideSIP, err: ErrUnmappable, msg: "no user part"},
		{name: "broken escape", uri: "sip:a%2@litware.example", side: SideSIP, err: ErrUnmappable, msg: "broken %-escape"},
		{name: "latin1 escape", uri: "sip:%E9lodie@litware.example", side: SideSIP, err: ErrUnmappable, msg: "not UTF-8"},
		{name: "control char", uri: "sip:a%00b@litware.example", side: SideSIP, err: ErrUnmappable, msg: "control character"},
		{name: "leading space", uri: "sip:%20bob@litware.example", side: SideSIP, err: ErrUnmappable, msg: "space"},
		{name: "precis refuses symbol", uri: "sip:%E2%99%A5@litware.example", side: SideSIP, err: ErrUnmappable, msg: "PRECIS"},
		{name: "tel scheme", uri: "tel:+15551234", side: SideSIP, err: ErrUnmappable, msg: "scheme tel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := m.JIDFromURI(mustURI(t, tt.uri), tt.side)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("JIDFromURI(%s) error = %v, want %v", tt.uri, err, tt.err)
				}
				var ae *AddressError
				if !errors.As(err, &ae) || !strings.Contains(err.Error(), tt.msg) || ae.Fix == "" {
					t.Fatalf("error %q: want an *AddressError mentioning %q with a fix", err, tt.msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("JIDFromURI(%s): %v", tt.uri, err)
			}
			if got.String() != tt.want {
				t.Errorf("JIDFromURI(%s) = %s, want %s", tt.uri, got, tt.want)
			}
		})
	}
}

func TestURIFromJID(t *testing.T) {
	m := testMapper(t)
	tests := []struct {
		name string
		jid  string
		side Side
		want string
		err  error
	}{
		{name: "plain", jid: "juliet@xmpp.example", side: SideXMPP, want: "sip:juliet@xmpp.example"},
		{name: "resource to gr", jid: "juliet@xmpp.example/balcony", side: SideXMPP, want: "sip:juliet@xmpp.example;gr=balcony"},
		{name: "resource percent encoded", jid: "juliet@xmpp.example/Bal cony ☂", side: SideXMPP, want: "sip:juliet@xmpp.example;gr=Bal%20cony%20%E2%98%82"},
		{name: "escaped space", jid: `john\20smith@xmpp.example`, side: SideXMPP, want: "sip:john%20smith@xmpp.example"},
		{name: "escaped at", jid: `ab\40c@xmpp.example`, side: SideXMPP, want: "sip:ab%40c@xmpp.example"},
		{name: "escaped apostrophe stays literal", jid: `o\27hara@xmpp.example`, side: SideXMPP, want: "sip:o'hara@xmpp.example"},
		{name: "utf8 local", jid: "иван@xmpp.example", side: SideXMPP, want: "sip:%D0%B8%D0%B2%D0%B0%D0%BD@xmpp.example"},
		{name: "idn domain to A-label", jid: "romeo@münchen.example", side: SideXMPP, want: "sip:romeo@xn--mnchen-3ya.example"},
		{name: "our user", jid: "alice@litware.example", side: SideSIP, want: "sip:alice@litware.example"},
		{name: "our user on a Lync endpoint", jid: "alice@litware.example/user:epid:qIIWS2j5AVeD_HxnQdxmlwAA", side: SideSIP, want: "sip:alice@litware.example;opaque=user:epid:qIIWS2j5AVeD_HxnQdxmlwAA;gruu"},
		{name: "unknown domain", jid: "eve@evil.example", side: SideXMPP, err: ErrUnknownDomain},
		{name: "no localpart", jid: "xmpp.example", side: SideXMPP, err: ErrUnmappable},
		{name: "wrong side", jid: "juliet@xmpp.example", side: SideSIP, err: ErrUnmappable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := m.URIFromJID(jid.MustParse(tt.jid), tt.side)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("URIFromJID(%s) error = %v, want %v", tt.jid, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("URIFromJID(%s): %v", tt.jid, err)
			}
			if got := u.String(); got != tt.want {
				t.Errorf("URIFromJID(%s) = %s, want %s", tt.jid, got, tt.want)
			}
			// The SIP form must parse and map back to the same JID.
			back, err := m.JIDFromURI(mustURI(t, u.String()), tt.side)
			if err != nil || back.String() != jid.MustParse(tt.jid).String() {
				t.Errorf("round trip %s -> %s -> %v (%v)", tt.jid, u.String(), back, err)
			}
		})
	}
}

func TestMapperSides(t *testing.T) {
	open, err := NewMapper([]string{"litware.example"}, nil, true, []string{"spam.example"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		domain string
		want   Side
	}{
		{"litware.example", SideSIP},
		{"LITWARE.example.", SideSIP},
		{"anyone.example", SideXMPP},
		{"spam.example", 0},
		{"192.0.2.7", 0},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			if got := open.SideOf(tt.domain); got != tt.want {
				t.Errorf("SideOf(%q) = %v, want %v", tt.domain, got, tt.want)
			}
		})
	}

	badTests := []struct {
		name       string
		sip, xmpp  []string
		wantSubstr string
	}{
		{"no sip domains", nil, []string{"x.example"}, "no SIP domains"},
		{"overlap", []string{"a.example"}, []string{"A.example"}, "both a SIP domain and an XMPP partner"},
		{"ip as domain", []string{"10.0.0.1"}, nil, "not a domain name"},
	}
	for _, tt := range badTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewMapper(tt.sip, tt.xmpp, false, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantSubstr) {
				t.Errorf("NewMapper error = %v, want %q", err, tt.wantSubstr)
			}
		})
	}
}

func TestMapperCache(t *testing.T) {
	m := testMapper(t)
	u := mustURI(t, "sip:Alice@litware.example;gr=pc")
	first, err := m.JIDFromURI(u, SideSIP)
	if err != nil {
		t.Fatal(err)
	}
	again, err := m.JIDFromURI(u, SideSIP)
	if err != nil || !again.Equal(first) {
		t.Fatalf("cached = %v, %v; want %v", again, err, first)
	}
	// The side is part of the key: the cached success must not leak.
	if _, err := m.JIDFromURI(u, SideXMPP); !errors.Is(err, ErrUnmappable) {
		t.Fatalf("other side err = %v, want ErrUnmappable", err)
	}
	// Fill past the bound from several goroutines; results stay right.
	done := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func(g int) {
			for i := 0; i < maxCache/2+10; i++ {
				name := fmt.Sprintf("user%d-%d", g, i)
				j, err := m.JIDFromURI(&sip.Uri{Scheme: "sip", User: name, Host: "litware.example"}, SideSIP)
				if err != nil || j.Localpart() != name {
					done <- fmt.Errorf("%s -> %v, %v", name, j, err)
					return
				}
			}
			done <- nil
		}(g)
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := len(m.cache); n > maxCache {
		t.Errorf("cache holds %d entries, bound is %d", n, maxCache)
	}
}
