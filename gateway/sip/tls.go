package sip

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// clientTLS is what we present when dialing the Edge: our certificate, and
// the Edge verified against tls.ca for its FQDN.
func clientTLS(c Config) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*c.Certificate},
		RootCAs:      c.RootCAs,
		ServerName:   c.Edge.Name,
	}
}

// serverTLS requires a client certificate and accepts only the Edge's. The
// chain is verified here rather than by crypto/tls so that every refusal,
// unknown CA included, is logged with the subject that was presented.
func serverTLS(c Config, log *slog.Logger) *tls.Config {
	base := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*c.Certificate},
		ClientAuth:   tls.RequestClientCert, // verified below, so a missing one is logged too
	}
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		conf := base.Clone()
		conf.GetConfigForClient = nil
		remote := hello.Conn.RemoteAddr().String()
		conf.VerifyConnection = func(cs tls.ConnectionState) error {
			err := verifyEdgeClient(cs.PeerCertificates, c.RootCAs, c.Edge.Name)
			if err != nil {
				log.Warn("sip: refused TLS client", "remote", remote, "subject", subjectOf(cs.PeerCertificates), "expected", c.Edge.Name, "error", err)
			}
			return err
		}
		return conf, nil
	}
	return base
}

func verifyEdgeClient(chain []*x509.Certificate, roots *x509.CertPool, name string) error {
	if len(chain) == 0 {
		return errors.New("no client certificate presented, expected the Edge's")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return fmt.Errorf("client certificate does not chain to tls.ca: %w", err)
	}
	if err := chain[0].VerifyHostname(name); err != nil {
		return fmt.Errorf("client certificate is not the Edge's (%s): %w", name, err)
	}
	return nil
}

// subjectOf names a presented certificate for a log line: subject and SANs.
func subjectOf(chain []*x509.Certificate) string {
	if len(chain) == 0 {
		return "(none)"
	}
	c := chain[0]
	s := c.Subject.String()
	if len(c.DNSNames) > 0 {
		s += " DNS:" + strings.Join(c.DNSNames, ",")
	}
	for _, ip := range c.IPAddresses {
		s += " IP:" + ip.String()
	}
	return s
}
