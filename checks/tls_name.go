package checks

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"

	"github.com/xgw-gateway/xgw/gateway/config"
)

// tlsNameCheck: the Edge validates the gateway's certificate by its CN,
// which must equal the internal FQDN (seed article, step 5 and figure 5);
// modern TLS stacks ignore the CN and look only at DNS SANs. XMPP peers
// verifying by RFC 6125 / XEP-0178 look for the SIP domain.
var tlsNameCheck = Check{
	ID:       "tls.name",
	Title:    "Certificate CN and SANs carry the gateway's names",
	Requires: []string{"tls.cert"},
	Run:      runTLSName,
}

func runTLSName(_ context.Context, env *Env) []Result {
	const id = "tls.name"
	c := env.Config
	leaf, bad := loadLeaf(env, id)
	if bad != nil {
		return bad
	}
	ids, idErr := parseXMPPIdentities(leaf)
	names := describeNames(leaf, ids, idErr)
	internal := strings.TrimSuffix(c.XMPP.InternalFQDN, ".")
	out := []Result{internalNameResult(id, c, leaf, internal, names)}
	for _, d := range c.SIP.Domains {
		d = strings.TrimSuffix(d, ".")
		if how := xmppIdentityMatch(leaf, ids, d); how != "" {
			out = append(out, pass(id, d, d+" is in the certificate as "+how))
			continue
		}
		out = append(out, warn(id, d,
			d+" is not in the certificate ("+names+")",
			"a DNS SAN "+d+" (or SRV-ID _xmpp-server."+d+", or XmppAddr "+d+"): XMPP peers authenticate the SIP domain by certificate (RFC 6120 §13.7.2, XEP-0178)",
			"add DNS:"+d+" to the SANs when the certificate is next issued ("+certRequestHint(c, "rsa:2048")+"); until then peers that verify certificates fall back to dialback, and those that require TLS authentication refuse"))
	}
	if ext := strings.TrimSuffix(c.XMPP.ExternalFQDN, "."); ext != "" && !strings.EqualFold(ext, internal) {
		if san := dnsSANMatch(leaf.DNSNames, ext); san != "" {
			out = append(out, pass(id, ext, "external FQDN "+ext+" is in the SANs as "+san))
		} else {
			// Not a fault: peers verify the SIP domain they address,
			// never the SRV target (RFC 6120 §13.7.2.1).
			out = append(out, pass(id, ext, "external FQDN "+ext+" is not in the SANs; not needed, XMPP peers check the SIP domain, not the SRV target"))
		}
	}
	return out
}

func internalNameResult(id string, c *config.Config, leaf *x509.Certificate, internal, names string) Result {
	cn := strings.TrimSuffix(leaf.Subject.CommonName, ".")
	cnOK := strings.EqualFold(cn, internal)
	san := dnsSANMatch(leaf.DNSNames, internal)
	expected := "CN=" + internal + " (xmpp.internal_fqdn, the name the Edge connects to) and a DNS SAN " + internal
	hint := certRequestHint(c, "rsa:2048")
	switch {
	case !cnOK && san == "":
		return fail(id, internal, "CN is not "+internal+" and no DNS SAN carries it ("+names+")", expected,
			"request a certificate for "+internal+": "+hint+"; or, if the certificate is right, set xmpp.internal_fqdn to "+cnOrNone(cn))
	case !cnOK:
		return fail(id, internal, "CN is "+cnOrNone(cn)+", not "+internal+" ("+names+")", expected,
			"the Edge compares the CN with the FQDN it connects to: request a certificate whose CN is "+internal+": "+hint)
	case san == "":
		return fail(id, internal, "CN is "+internal+" but no DNS SAN carries it ("+names+")", expected,
			"modern TLS stacks ignore the CN: request the certificate again with DNS:"+internal+" in subjectAltName: "+hint)
	}
	return pass(id, internal, "CN and DNS SAN "+san+" match "+internal+" ("+names+")")
}

func cnOrNone(cn string) string {
	if cn == "" {
		return "(empty)"
	}
	return cn
}

// certRequestHint is a command making a key and a CSR with every name and
// usage the checks look for.
func certRequestHint(c *config.Config, newKey string) string {
	sans := []string{"DNS:" + c.XMPP.InternalFQDN, "DNS:" + c.XMPP.ExternalFQDN}
	for _, d := range c.SIP.Domains {
		sans = append(sans, "DNS:"+d)
	}
	return fmt.Sprintf("run `xgw cert request` (or: openssl req -new -newkey %s -nodes -keyout key.pem -out xgw.csr -subj /CN=%s -addext subjectAltName=%s -addext extendedKeyUsage=serverAuth,clientAuth)"+
		", then submit xgw.csr to the CA (AD CS from a host outside the domain: certreq -submit -attrib CertificateTemplate:NAME xgw.csr)",
		newKey, c.XMPP.InternalFQDN, strings.Join(sans, ","))
}

// dnsSANMatch returns the DNS SAN that matches name, exactly or as a
// wildcard for its first label (RFC 6125 §6.4.3), or "".
func dnsSANMatch(sans []string, name string) string {
	for _, s := range sans {
		s = strings.TrimSuffix(s, ".")
		if strings.EqualFold(s, name) {
			return s
		}
		if rest, ok := strings.CutPrefix(s, "*."); ok {
			if first, parent, ok := strings.Cut(name, "."); ok && first != "" && strings.EqualFold(rest, parent) {
				return s
			}
		}
	}
	return ""
}

// xmppIDs are the XMPP-specific otherName SANs of a certificate.
type xmppIDs struct {
	SRVNames  []string // id-on-dnsSRV (RFC 4985), e.g. _xmpp-server.example.org
	XMPPAddrs []string // id-on-xmppAddr (RFC 6120 §13.7.1.4)
}

// xmppIdentityMatch says how the certificate names domain d for an XMPP
// peer (RFC 6120 §13.7.2, XEP-0178), or "".
func xmppIdentityMatch(leaf *x509.Certificate, ids xmppIDs, d string) string {
	if san := dnsSANMatch(leaf.DNSNames, d); san != "" {
		return "DNS-ID " + san
	}
	for _, s := range ids.SRVNames {
		if strings.EqualFold(s, "_xmpp-server."+d) {
			return "SRV-ID " + s
		}
	}
	for _, a := range ids.XMPPAddrs {
		if strings.EqualFold(a, d) {
			return "XmppAddr " + a
		}
	}
	return ""
}

func describeNames(leaf *x509.Certificate, ids xmppIDs, idErr error) string {
	parts := []string{"CN=" + cnOrNone(leaf.Subject.CommonName)}
	list := func(label string, v []string) {
		if len(v) > 0 {
			parts = append(parts, label+" "+strings.Join(v, ", "))
		}
	}
	list("DNS SANs:", leaf.DNSNames)
	list("SRV-IDs:", ids.SRVNames)
	list("XmppAddrs:", ids.XMPPAddrs)
	if len(leaf.DNSNames)+len(ids.SRVNames)+len(ids.XMPPAddrs) == 0 {
		parts = append(parts, "no DNS SANs")
	}
	if idErr != nil {
		parts = append(parts, "otherName SANs unreadable: "+idErr.Error())
	}
	return strings.Join(parts, "; ")
}

var (
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidXmppAddr       = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5}
	oidSRVName        = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7}
)

// parseXMPPIdentities reads the otherName SANs crypto/x509 leaves out. It
// checks each otherName's type OID: a Microsoft UPN is a UTF8String too and
// must not be taken for an XmppAddr.
func parseXMPPIdentities(leaf *x509.Certificate) (xmppIDs, error) {
	var ids xmppIDs
	for _, ext := range leaf.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		var names []asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &names); err != nil || len(rest) > 0 {
			return ids, errors.New("malformed subjectAltName")
		}
		for _, n := range names {
			if n.Class != asn1.ClassContextSpecific || n.Tag != 0 {
				continue // not an otherName
			}
			// OtherName ::= SEQUENCE { type-id OID, value [0] EXPLICIT ANY }
			var on struct {
				Type  asn1.ObjectIdentifier
				Value asn1.RawValue // the [0] wrapper; its Bytes hold the string
			}
			if _, err := asn1.UnmarshalWithParams(n.FullBytes, &on, "tag:0"); err != nil ||
				on.Value.Class != asn1.ClassContextSpecific || on.Value.Tag != 0 {
				return ids, errors.New("malformed otherName")
			}
			var s string
			switch {
			case on.Type.Equal(oidXmppAddr):
				if _, err := asn1.UnmarshalWithParams(on.Value.Bytes, &s, "utf8"); err != nil {
					return ids, fmt.Errorf("malformed XmppAddr: %w", err)
				}
				ids.XMPPAddrs = append(ids.XMPPAddrs, s)
			case on.Type.Equal(oidSRVName):
				if _, err := asn1.UnmarshalWithParams(on.Value.Bytes, &s, "ia5"); err != nil {
					return ids, fmt.Errorf("malformed SRVName: %w", err)
				}
				ids.SRVNames = append(ids.SRVNames, s)
			}
		}
	}
	return ids, nil
}

// loadLeaf reads the gateway's certificate for the checks that require
// tls.cert; run alone (--only), they report the load failure themselves.
func loadLeaf(env *Env, id string) (*x509.Certificate, []Result) {
	chain, bad := loadCertChain(env, id, "cert")
	if bad != nil {
		return nil, []Result{*bad}
	}
	return chain[0], nil
}
