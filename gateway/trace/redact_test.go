package trace

import (
	"strings"
	"testing"
)

const sipMessage = "MESSAGE sip:alice@sip.example SIP/2.0\r\n" +
	"Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK.1\r\n" +
	"From: <sip:bob@xmpp.example>;tag=ab\r\n" +
	"To: <sip:alice@sip.example>\r\n" +
	"Call-ID: c4ll@host\r\n" +
	"CSeq: 1 MESSAGE\r\n" +
	"Content-Type: text/plain;charset=UTF-8\r\n" +
	"Content-Length: 11\r\n\r\n" +
	"hello there"

func TestRedactSIP(t *testing.T) {
	head := sipMessage[:strings.Index(sipMessage, "\r\n\r\n")+4]
	tests := []struct {
		name, in string
		bodies   bool
		want     string
		callID   string
	}{
		{"body redacted", sipMessage, false, head + "[11 bytes redacted]", "c4ll@host"},
		{"body kept with bodies", sipMessage, true, sipMessage, "c4ll@host"},
		{"no body", "OPTIONS sip:gw SIP/2.0\r\ni: x1\r\nl: 0\r\n\r\n", false, "OPTIONS sip:gw SIP/2.0\r\ni: x1\r\nl: 0\r\n\r\n", "x1"},
		{"response", "SIP/2.0 200 OK\r\nCall-ID: r1\r\nContent-Length: 4\r\n\r\nabcd", false, "SIP/2.0 200 OK\r\nCall-ID: r1\r\nContent-Length: 4\r\n\r\n[4 bytes redacted]", "r1"},
		{"credentials always hidden", "MESSAGE sip:a@b SIP/2.0\r\nAuthorization: Digest username=\"u\", response=\"secret\"\r\nCall-ID: z\r\n\r\n", true,
			"MESSAGE sip:a@b SIP/2.0\r\nAuthorization: Digest [credentials redacted]\r\nCall-ID: z\r\n\r\n", "z"},
		{"PIDF body hidden", "NOTIFY sip:a@b SIP/2.0\r\nCall-ID: n\r\nContent-Type: application/pidf+xml\r\n\r\n<presence><tuple><note>at lunch</note></tuple></presence>", false,
			"NOTIFY sip:a@b SIP/2.0\r\nCall-ID: n\r\nContent-Type: application/pidf+xml\r\n\r\n[57 bytes redacted]", "n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, h := RedactSIP([]byte(tt.in), tt.bodies)
			if string(got) != tt.want {
				t.Errorf("RedactSIP =\n%q\nwant\n%q", got, tt.want)
			}
			if h.callID != tt.callID {
				t.Errorf("Call-ID = %q, want %q", h.callID, tt.callID)
			}
		})
	}
}

func TestSIPDomains(t *testing.T) {
	_, h := RedactSIP([]byte(sipMessage), false)
	tests := []struct {
		name          string
		h             sipHead
		dir           Dir
		local, remote string
	}{
		// sipMessage is from bob@xmpp.example to alice@sip.example.
		{"request in: from our user", h, In, "xmpp.example", "sip.example"},
		{"request out: to our user", h, Out, "sip.example", "xmpp.example"},
		{"response in: to our request", sipHead{fromHost: "theirs", toHost: "ours"}, In, "ours", "theirs"},
		{"response out: to their request", sipHead{fromHost: "ours", toHost: "theirs"}, Out, "ours", "theirs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, r := tt.h.domains(tt.dir)
			if l != tt.local || r != tt.remote {
				t.Errorf("domains = %s, %s; want %s, %s", l, r, tt.local, tt.remote)
			}
		})
	}
}

func TestRedactXML(t *testing.T) {
	tests := []struct {
		name, in string
		bodies   bool
		want     string
		thread   string
	}{
		{"message body and subject hidden, thread kept",
			`<message from='bob@xmpp.example' to='alice@sip.example' type='chat'><subject>hi</subject><body>secret text</body><thread>c4ll@host</thread></message>`, false,
			`<message from='bob@xmpp.example' to='alice@sip.example' type='chat'><subject>[2 bytes redacted]</subject><body>[11 bytes redacted]</body><thread>c4ll@host</thread></message>`, "c4ll@host"},
		{"message body kept with bodies",
			`<message><body>secret text</body></message>`, true,
			`<message><body>secret text</body></message>`, ""},
		{"xhtml body hidden whole",
			`<message><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p>hey <b>you</b></p></body></html></message>`, false,
			`<message><html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>[21 bytes redacted]</body></html></message>`, ""},
		{"presence status hidden, show kept",
			`<presence from='a@x' to='b@y'><show>away</show><status>at the dentist</status></presence>`, false,
			`<presence from='a@x' to='b@y'><show>away</show><status>[14 bytes redacted]</status></presence>`, ""},
		{"empty status untouched", `<presence><status/></presence>`, false, `<presence><status/></presence>`, ""},
		{"PIDF note hidden",
			`<presence xmlns='urn:ietf:params:xml:ns:pidf'><tuple id='t'><note>gone fishing</note></tuple></presence>`, false,
			`<presence xmlns='urn:ietf:params:xml:ns:pidf'><tuple id='t'><note>[12 bytes redacted]</note></tuple></presence>`, ""},
		{"dialback key hidden even with bodies",
			`<db:result from='sip.example' to='xmpp.example'>0123456789abcdef</db:result>`, true,
			`<db:result from='sip.example' to='xmpp.example'>[16 bytes redacted]</db:result>`, ""},
		{"dialback verify hidden, default namespace form",
			`<verify xmlns='jabber:server:dialback' from='a' to='b' id='i'>k3y</verify>`, true,
			`<verify xmlns='jabber:server:dialback' from='a' to='b' id='i'>[3 bytes redacted]</verify>`, ""},
		{"dialback answer kept", `<db:result from='a' to='b' type='valid'/>`, true, `<db:result from='a' to='b' type='valid'/>`, ""},
		{"SASL auth payload hidden even with bodies",
			`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>c2lwLmV4YW1wbGU=</auth>`, true,
			`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>[16 bytes redacted]</auth>`, ""},
		{"SASL success payload hidden",
			`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dA==</success>`, true,
			`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>[4 bytes redacted]</success>`, ""},
		{"stream header and features kept",
			`<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='x' version='1.0'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>`, false,
			`<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='x' version='1.0'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>`, ""},
		{"closing tag alone", `</stream:stream>`, false, `</stream:stream>`, ""},
		{"truncated body hidden to the end", `<message><body>half a mess`, false, `<message><body>[11 bytes unparsed, redacted]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, info := RedactXML([]byte(tt.in), tt.bodies)
			if string(got) != tt.want {
				t.Errorf("RedactXML =\n%s\nwant\n%s", got, tt.want)
			}
			if info.thread != tt.thread {
				t.Errorf("thread = %q, want %q", info.thread, tt.thread)
			}
		})
	}
}
