package xmpp

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/xgw-gateway/xgw/gateway/config"
)

// policy is the federation allow/deny decision (config xmpp.federation,
// xmpp.open, xmpp.deny). SetPolicy replaces its rules while streams run:
// each new stream and each dialback reads the rules of its moment.
type policy struct{ cur atomic.Pointer[rules] }

func newPolicy(partners []config.Partner, open bool, deny []string, ours map[string]bool) (*policy, error) {
	r, err := newRules(partners, open, deny, ours)
	if err != nil {
		return nil, err
	}
	p := &policy{}
	p.cur.Store(r)
	return p, nil
}

func (p *policy) mode(domain string) (string, error) { return p.cur.Load().mode(domain) }

// SetPolicy replaces the allow list, open federation and the deny list
// (a config reload). Established streams stay: the new rules apply to the
// next stream and the next dialback. A bad partner entry leaves the old
// rules in place.
func (s *Server) SetPolicy(federation []config.Partner, open bool, deny []string) error {
	r, err := newRules(federation, open, deny, s.domains)
	if err != nil {
		return err
	}
	s.pol.cur.Store(r)
	return nil
}

type rules struct {
	partners map[string]string // domain -> auth mode
	open     bool
	deny     map[string]bool
	allowed  string // for messages: "gmail.com, jabber.org"
}

func newRules(partners []config.Partner, open bool, deny []string, ours map[string]bool) (*rules, error) {
	p := &rules{partners: map[string]string{}, open: open, deny: map[string]bool{}}
	var names []string
	for _, pt := range partners {
		d := strings.ToLower(pt.Domain)
		switch pt.Auth {
		case "":
			pt.Auth = config.AuthDialback
		case config.AuthDialback, config.AuthTLS, config.AuthTLSDialback:
		default:
			return nil, fmt.Errorf("xmpp: federation partner %s: auth %q, expected dialback, tls or tls+dialback", pt.Domain, pt.Auth)
		}
		if ours[d] {
			return nil, fmt.Errorf("xmpp: federation partner %s is one of our own domains; remove it from xmpp.federation", pt.Domain)
		}
		p.partners[d] = pt.Auth
		names = append(names, d)
	}
	for _, d := range deny {
		p.deny[strings.ToLower(d)] = true
	}
	slices.Sort(names)
	p.allowed = strings.Join(names, ", ")
	return p, nil
}

// mode returns the auth mode required of domain, or an error that names
// the domain and says why it is refused.
func (p *rules) mode(domain string) (string, error) {
	d := strings.ToLower(domain)
	if p.deny[d] {
		return "", fmt.Errorf("domain %s is in xmpp.deny", domain)
	}
	if m, ok := p.partners[d]; ok {
		return m, nil
	}
	if p.open {
		return config.AuthDialback, nil
	}
	allowed := p.allowed
	if allowed == "" {
		allowed = "none"
	}
	return "", fmt.Errorf("domain %s is not in xmpp.federation (allowed: %s) and xmpp.open is false", domain, allowed)
}

// needsTLS reports whether mode requires an encrypted stream.
func needsTLS(mode string) bool { return mode == config.AuthTLS || mode == config.AuthTLSDialback }

// needsValidCert reports whether mode requires the peer's certificate to
// validate for its domain.
func needsValidCert(mode string) bool { return mode == config.AuthTLS }
