package sip

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
)

// identity is our certificate and the Edge's CA (tls.cert, tls.ca). Every
// handshake reads the current one, so SetTLS changes the next handshake
// and leaves established connections alone.
type identity struct {
	cert  *tls.Certificate
	roots *x509.CertPool
}

// SetTLS replaces our certificate and the CA the Edge is verified against
// (a config reload): new TLS connections, both ways, use them; established
// ones and the dialogs on them are kept.
func (e *Endpoint) SetTLS(cert *tls.Certificate, roots *x509.CertPool) error {
	if cert == nil || roots == nil {
		return errors.New("sip: SetTLS needs our certificate (tls.cert, tls.key) and the Edge's CA (tls.ca)")
	}
	e.id.Store(&identity{cert: cert, roots: roots})
	return nil
}

// clientTLS is what we present when dialing the Edge: our certificate, and
// the Edge verified against tls.ca for its FQDN. Verification is ours (in
// VerifyConnection, with the same rules as crypto/tls's) so that it reads
// the CA of the moment.
func clientTLS(c Config, id *atomic.Pointer[identity]) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: c.Edge.Name,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return id.Load().cert, nil
		},
		InsecureSkipVerify: true, // verified by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyEdgeServer(cs.PeerCertificates, id.Load().roots, c.Edge.Name)
		},
	}
}

// verifyEdgeServer checks the Edge's server certificate: a chain to tls.ca
// and the Edge's FQDN.
func verifyEdgeServer(chain []*x509.Certificate, roots *x509.CertPool, name string) error {
	if len(chain) == 0 {
		return errors.New("the Edge presented no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: name}); err != nil {
		return fmt.Errorf("the Edge's certificate (%s) is not valid for %s under tls.ca: %w", subjectOf(chain), name, err)
	}
	return nil
}

// serverTLS requires a client certificate and accepts only the Edge's. The
// chain is verified here rather than by crypto/tls so that every refusal,
// unknown CA included, is logged with the subject that was presented.
func serverTLS(c Config, id *atomic.Pointer[identity], log *slog.Logger) *tls.Config {
	base := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return id.Load().cert, nil
		},
		ClientAuth: tls.RequestClientCert, // verified below, so a missing one is logged too
	}
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		conf := base.Clone()
		conf.GetConfigForClient = nil
		remote := hello.Conn.RemoteAddr().String()
		conf.VerifyConnection = func(cs tls.ConnectionState) error {
			err := verifyEdgeClient(cs.PeerCertificates, id.Load().roots, c.Edge.Name)
			if err != nil {
				log.Warn("sip: refused TLS client", "remote", remote, "subject", subjectOf(cs.PeerCertificates), "expected", c.Edge.Name, "err", err)
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
