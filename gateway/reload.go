package gateway

import (
	"fmt"
	"slices"
	"strings"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/gateway/sip"
)

// Reload applies a new configuration while streams and dialogs run (serve
// calls it on SIGHUP): the federation allow list (xmpp.federation, open,
// deny), our certificates (tls.cert/key toward both sides, tls.domains
// toward XMPP peers), the Edge's CA (tls.ca) and the dialback secret.
// Established s2s streams, SIP connections and dialogs are kept; the next
// stream sees the new rules and the next TLS handshake the new
// certificates. Keys that cannot change live are returned as restart, and
// keep their old values. On error nothing is applied.
func (s *Server) Reload(nc *config.Config) (restart []string, err error) {
	restart = s.restartKeys(nc)
	// tls.cert/key and tls.ca, read as at start.
	sc, err := sip.FromConfig(nc, nil, nil, s.log)
	if err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	cs, err := loadCerts(nc, sc.Certificate)
	if err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	old := s.certs.Load()
	switch {
	case old == nil && cs != nil:
		restart = append(restart, "tls.cert (TLS toward XMPP peers was off at start)")
		cs = nil
	case old != nil && cs == nil:
		restart = append(restart, "tls.cert (removing every certificate turns TLS off)")
	}
	sipTLS := sc.Certificate != nil && sc.RootCAs != nil

	x := nc.XMPP
	if err := s.xs.SetPolicy(x.Federation, x.Open, x.Deny); err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	if sipTLS {
		s.ep.SetTLS(sc.Certificate, sc.RootCAs) // both set: cannot fail
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
		{"checks.dns_server", oc.Checks.DNSServer != nc.Checks.DNSServer},
		{"admin.listen", oc.Admin.Listen != nc.Admin.Listen},
		{"trace", oc.Trace.File != nc.Trace.File || !slices.Equal(oc.Trace.Protocols, nc.Trace.Protocols) ||
			oc.Trace.Bodies != nc.Trace.Bodies || oc.Trace.MaxSizeMB != nc.Trace.MaxSizeMB || oc.Trace.MaxFiles != nc.Trace.MaxFiles},
	} {
		if k.changed {
			out = append(out, k.key)
		}
	}
	return out
}
