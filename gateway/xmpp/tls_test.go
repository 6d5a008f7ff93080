package xmpp

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/internal/certtest"
)

var (
	oidSAN      = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidXmppAddr = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5}
	oidSRVName  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7}
)

// otherNameSAN builds a subjectAltName extension holding one otherName
// (RFC 5280 §4.2.1.6), as XmppAddr and SRVName are encoded.
func otherNameSAN(t *testing.T, oid asn1.ObjectIdentifier, value string, tag int) pkix.Extension {
	t.Helper()
	inner, err := asn1.Marshal(asn1.RawValue{Tag: tag, Class: asn1.ClassUniversal, Bytes: []byte(value)})
	if err != nil {
		t.Fatal(err)
	}
	oidDER, _ := asn1.Marshal(oid)
	explicit, _ := asn1.Marshal(asn1.RawValue{Tag: 0, Class: asn1.ClassContextSpecific, IsCompound: true, Bytes: inner})
	other, _ := asn1.Marshal(asn1.RawValue{Tag: 0, Class: asn1.ClassContextSpecific, IsCompound: true, Bytes: append(oidDER, explicit...)})
	seq, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSequence, Class: asn1.ClassUniversal, IsCompound: true, Bytes: other})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidSAN, Value: seq}
}

// TestCertIdentity: RFC 6125 identities as XEP-0178 uses them.
func TestCertIdentity(t *testing.T) {
	ca := certtest.NewCA(t, "ca")
	stranger := certtest.NewCA(t, "stranger")
	s := &Server{cfg: Config{TLS: &tls.Config{RootCAs: ca.Pool()}}}
	tests := []struct {
		name   string
		ca     *certtest.CA
		leaf   certtest.Leaf
		domain string
		want   string // "" valid, else a substring of the error
	}{
		{"DNS-ID", ca, certtest.Leaf{CN: "x", DNSNames: []string{"b.test"}, ECDSA: true}, "b.test", ""},
		{"DNS-ID case-insensitive", ca, certtest.Leaf{DNSNames: []string{"B.Test"}, ECDSA: true}, "b.test", ""},
		{"wildcard DNS-ID", ca, certtest.Leaf{DNSNames: []string{"*.b.test"}, ECDSA: true}, "chat.b.test", ""},
		{"wildcard does not cover the parent", ca, certtest.Leaf{DNSNames: []string{"*.b.test"}, ECDSA: true}, "b.test", "does not name b.test"},
		{"CN alone is not an identity", ca, certtest.Leaf{CN: "b.test", DNSNames: []string{"other.test"}, ECDSA: true}, "b.test", "does not name b.test"},
		{"XmppAddr", ca, certtest.Leaf{CN: "x", ECDSA: true, ExtraExtensions: []pkix.Extension{otherNameSAN(t, oidXmppAddr, "b.test", asn1.TagUTF8String)}}, "b.test", ""},
		{"SRV-ID", ca, certtest.Leaf{CN: "x", ECDSA: true, ExtraExtensions: []pkix.Extension{otherNameSAN(t, oidSRVName, "_xmpp-server.b.test", asn1.TagIA5String)}}, "b.test", ""},
		{"SRV-ID for another service", ca, certtest.Leaf{CN: "x", ECDSA: true, ExtraExtensions: []pkix.Extension{otherNameSAN(t, oidSRVName, "_xmpp-client.b.test", asn1.TagIA5String)}}, "b.test", "does not name"},
		{"untrusted CA", stranger, certtest.Leaf{DNSNames: []string{"b.test"}, ECDSA: true}, "b.test", "does not chain to a trusted CA"},
		{"client-auth-only EKU accepted", ca, certtest.Leaf{DNSNames: []string{"b.test"}, ECDSA: true, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, "b.test", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.ca.Issue(t, tt.leaf)
			err := s.verifyPeer([]*x509.Certificate{p.Cert}, tt.domain)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("err = %v, want valid", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// dialWireTLS is a raw peer over direct TLS presenting cert.
func dialWireTLS(t *testing.T, addr string, cert *certtest.Pair) *wire {
	t.Helper()
	c := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"xmpp-server"}}
	if cert != nil {
		c.Certificates = []tls.Certificate{cert.TLS}
	}
	raw, err := tls.Dial("tcp", addr, c)
	if err != nil {
		t.Fatal(err)
	}
	return wrapWire(t, raw)
}

// TestSASLExternalInbound: XEP-0178 on the receiving side, over direct TLS.
func TestSASLExternalInbound(t *testing.T) {
	ca := certtest.NewCA(t, "ca")
	stranger := certtest.NewCA(t, "stranger")
	f := newFed(t)
	a := f.add(peerOpts{domains: []string{"a.test"}, partners: []config.Partner{{Domain: "b.test"}, {Domain: "c.test"}},
		tls: tlsFor(t, ca, "a.test", ca), directTLS: true})
	certB := ca.Issue(t, certtest.Leaf{DNSNames: []string{"b.test"}, ECDSA: true})
	certX := ca.Issue(t, certtest.Leaf{DNSNames: []string{"x.test"}, ECDSA: true})
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name       string
		cert       *certtest.Pair
		from       string
		offered    bool
		auth       string
		want       string
		authorized bool
	}{
		{"valid certificate, empty authzid", certB, "b.test", true, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>", "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>", true},
		{"valid certificate, authzid = from", certB, "b.test", true, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>" + b64("b.test") + "</auth>", "<success ", true},
		{"authzid of another domain", certB, "b.test", true, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>" + b64("c.test") + "</auth>", "<invalid-authzid/>", false},
		{"other mechanism", certB, "b.test", true, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>", "<invalid-mechanism/>", false},
		{"untrusted certificate: not offered", stranger.Issue(t, certtest.Leaf{DNSNames: []string{"b.test"}, ECDSA: true}), "b.test", false,
			"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>", "<not-authorized/>", false},
		{"no client certificate", nil, "b.test", false, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>", "<not-authorized/>", false},
		{"valid certificate, domain not allowed", certX, "x.test", true, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>",
			"domain x.test is not in xmpp.federation", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := dialWireTLS(t, a.addr, tt.cert)
			w.send(hdr(tt.from, "a.test"))
			feats := w.expect("</stream:features>")
			if got := strings.Contains(feats, "<mechanism>EXTERNAL</mechanism>"); got != tt.offered {
				t.Errorf("EXTERNAL offered = %v, want %v:\n%s", got, tt.offered, feats)
			}
			if strings.Contains(feats, "starttls") {
				t.Errorf("STARTTLS offered on a TLS stream:\n%s", feats)
			}
			w.send(tt.auth)
			w.expect(tt.want)
			if !tt.authorized {
				// The stream survives a SASL failure; dialback is still possible.
				w.send("<db:verify from='b.test' to='a.test' id='x'>00</db:verify>")
				w.expect("type='invalid'/>")
				return
			}
			w.send(hdr(tt.from, "a.test"))
			feats = w.expect("</stream:features>")
			if strings.Contains(feats, "mechanisms") {
				t.Errorf("mechanisms offered again after SASL:\n%s", feats)
			}
			w.send("<message from='bob@b.test' to='alice@a.test'><body>over EXTERNAL</body></message>")
			if st := a.recv(t); !strings.Contains(string(st.Inner), "over EXTERNAL") {
				t.Errorf("got %s", st)
			}
		})
	}
}

// TestStanzaAddressing: after authentication, stanzas need both addresses.
func TestStanzaAddressing(t *testing.T) {
	_, a, b := receivingFixture(t)
	tests := []struct{ name, stanza, want string }{
		{"no from", "<message to='alice@a.test'/>", "<improper-addressing "},
		{"no to", "<message from='bob@b.test'/>", "<improper-addressing "},
		{"invalid JID", "<message from='bob@b.test' to='a@@a.test'/>", "<improper-addressing "},
		{"not a stanza", "<foo/>", "<unsupported-stanza-type "},
		{"client namespace", "<message xmlns='jabber:client' from='bob@b.test' to='alice@a.test'/>", "<invalid-namespace "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := dialWire(t, a.addr)
			w.send(hdr("b.test", "a.test"))
			id := attrOf(w.expect("</stream:features>"), "<stream:stream", "id")
			w.send("<db:result from='b.test' to='a.test'>" + dialbackKey(hashSecret(b.secret), "a.test", "b.test", id) + "</db:result>")
			w.expect("type='valid'/>")
			w.send(tt.stanza)
			w.expect(tt.want)
			w.expectClosed()
		})
	}
}
