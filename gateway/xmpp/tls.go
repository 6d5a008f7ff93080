package xmpp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	xmppx509 "mellium.im/xmpp/x509"
)

// verifyPeer checks a peer's certificate chain against RootCAs and its
// identity against domain per RFC 6125 §6 as XEP-0178 applies it: a DNS-ID
// (dNSName SAN, wildcards in the left-most label), an SRV-ID
// "_xmpp-server.<domain>" or an XmppAddr equal to the domain. The subject
// CN is not consulted (RFC 6125 §6.4.4 allows it only without SANs; every
// certificate we accept has them).
func (s *Server) verifyPeer(certs []*x509.Certificate, domain string) error {
	if len(certs) == 0 {
		return errors.New("the peer presented no certificate")
	}
	var roots *x509.CertPool
	if s.cfg.TLS != nil {
		roots = s.cfg.TLS.RootCAs
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	// Any EKU: XMPP servers present their server certificate as a client
	// certificate too, and many lack clientAuth.
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("certificate of %s does not chain to a trusted CA: %w", domain, err)
	}
	return certNames(certs[0], domain)
}

// certNames checks the identity part of verifyPeer.
func certNames(c *x509.Certificate, domain string) error {
	domain = strings.ToLower(domain)
	if c.VerifyHostname(domain) == nil {
		return nil
	}
	xc, err := xmppx509.FromCertificate(c)
	if err == nil {
		if slices.ContainsFunc(xc.SRVNames, func(n string) bool { return strings.EqualFold(n, "_xmpp-server."+domain) }) {
			return nil
		}
		if slices.ContainsFunc(xc.XMPPAddresses, func(n string) bool { return strings.EqualFold(n, domain) }) {
			return nil
		}
	}
	return fmt.Errorf("certificate (CN %q, DNS names %v) does not name %s as DNS-ID, SRV-ID or XmppAddr", c.Subject.CommonName, c.DNSNames, domain)
}

// certFor returns our certificate for domain, or nil when we have none.
func (s *Server) certFor(domain string) *tls.Certificate {
	t := s.cfg.TLS
	if t == nil {
		return nil
	}
	if t.GetCertificate != nil {
		c, err := t.GetCertificate(&tls.ClientHelloInfo{ServerName: domain})
		if err == nil && c != nil {
			return c
		}
	}
	for i := range t.Certificates {
		c := &t.Certificates[i]
		if c.Leaf != nil && c.Leaf.VerifyHostname(domain) != nil {
			continue
		}
		return c
	}
	return nil
}

// clientTLS is the config for an outbound STARTTLS or direct TLS from
// local to remote: SNI is the remote domain (never ours, see
// LIBRARIES.md §2.3 item 5), and verification is done by verifyPeer after
// the handshake so that dialback remains possible with an unverifiable
// certificate.
func (s *Server) clientTLS(local, remote string, alpn bool) *tls.Config {
	c := &tls.Config{
		ServerName:         remote,
		InsecureSkipVerify: true, // verified by verifyPeer after the handshake
		MinVersion:         tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := s.certFor(local); c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil
		},
	}
	if alpn {
		c.NextProtos = []string{"xmpp-server"} // XEP-0368
	}
	return c
}
