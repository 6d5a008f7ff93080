package gateway

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"

	"github.com/xgw-gateway/xgw/gateway/config"
)

// Reload applies a new configuration while streams and dialogs run (serve
// calls it on SIGHUP): the federation allow list (xmpp.federation, open,
// deny), our certificates toward XMPP peers (tls.cert/key, tls.domains)
// and the dialback secret. Established s2s streams and SIP dialogs are
// kept; the next stream sees the new rules and the next TLS handshake the
// new certificate. Keys that cannot change live are returned as restart,
// and keep their old values. On error nothing is applied.
//
// The SIP side's TLS toward the Edge (tls.cert as client certificate,
// tls.ca) is set when the endpoint starts: a change there needs a restart
// and is listed in restart.
func (s *Server) Reload(nc *config.Config) (restart []string, err error) {
	restart = s.restartKeys(nc)
	var cs *certSet
	if nc.TLS.Cert != "" || len(nc.TLS.Domains) > 0 {
		var main *tls.Certificate
		if nc.TLS.Cert != "" {
			pair, err := tls.LoadX509KeyPair(nc.Path(nc.TLS.Cert), nc.Path(nc.TLS.Key))
			if err != nil {
				return nil, fmt.Errorf("reload: tls.cert/tls.key: %w (expected a PEM certificate and its private key)", err)
			}
			main = &pair
		}
		if cs, err = loadCerts(nc, main); err != nil {
			return nil, fmt.Errorf("reload: %w", err)
		}
	}
	old := s.certs.Load()
	switch {
	case old == nil && cs != nil:
		restart = append(restart, "tls.cert (TLS toward XMPP peers was off at start)")
		cs = nil
	case old != nil && cs == nil:
		restart = append(restart, "tls.cert (removing every certificate turns TLS off)")
	}
	if old != nil && cs != nil && !sameCert(old.main, cs.main) && s.cfg.SIP.Edge.Transport == "tls" {
		restart = append(restart, "tls.cert for the SIP side (mutual TLS with the Edge keeps the old one)")
	}

	x := nc.XMPP
	if err := s.xs.SetPolicy(x.Federation, x.Open, x.Deny); err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	s.partners.Store(partnerSet(x.Federation))
	if cs != nil {
		s.certs.Store(cs)
	}
	if x.DialbackSecret != "" && x.DialbackSecret != s.cfg.XMPP.DialbackSecret {
		s.xs.RotateSecret([]byte(x.DialbackSecret))
	}
	var partners []string
	for _, p := range x.Federation {
		partners = append(partners, p.Domain+"="+p.Auth)
	}
	s.log.Info("config reloaded", "file", nc.File, "federation", strings.Join(partners, ","), "open", x.Open,
		"deny", strings.Join(x.Deny, ","), "tls_domains", len(nc.TLS.Domains))
	for _, k := range restart {
		s.log.Warn("config reload: restart needed to apply a change", "key", k)
	}
	return restart, nil
}

// restartKeys lists the keys whose change Reload cannot apply.
func (s *Server) restartKeys(nc *config.Config) []string {
	oc := s.cfg
	var out []string
	for _, k := range []struct {
		key     string
		changed bool
	}{
		{"sip.domains", !slices.Equal(oc.SIP.Domains, nc.SIP.Domains)},
		{"sip.listen", oc.SIP.Listen != nc.SIP.Listen},
		{"sip.edge", oc.SIP.Edge != nc.SIP.Edge},
		{"xmpp.listen", oc.XMPP.Listen != nc.XMPP.Listen},
		{"xmpp.internal_fqdn", oc.XMPP.InternalFQDN != nc.XMPP.InternalFQDN},
		{"xmpp.max_stanza_size", oc.XMPP.MaxStanzaSize != nc.XMPP.MaxStanzaSize},
		{"tls.ca", oc.TLS.CA != nc.TLS.CA},
		{"checks.dns_server", oc.Checks.DNSServer != nc.Checks.DNSServer},
		{"admin.listen", oc.Admin.Listen != nc.Admin.Listen},
	} {
		if k.changed {
			out = append(out, k.key)
		}
	}
	return out
}

func sameCert(a, b *tls.Certificate) bool {
	if a == nil || b == nil {
		return a == b
	}
	return len(a.Certificate) > 0 && len(b.Certificate) > 0 && bytes.Equal(a.Certificate[0], b.Certificate[0])
}
