package xmpp

import (
	"fmt"
	"slices"
	"strings"

	"github.com/xgw-gateway/xgw/gateway/config"
)

// policy is the federation allow/deny decision (config xmpp.federation,
// xmpp.open, xmpp.deny).
type policy struct {
	partners map[string]string // domain -> auth mode
	open     bool
	deny     map[string]bool
	allowed  string // for messages: "gmail.com, jabber.org"
}

func newPolicy(partners []config.Partner, open bool, deny []string, ours map[string]bool) (*policy, error) {
	p := &policy{partners: map[string]string{}, open: open, deny: map[string]bool{}}
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
func (p *policy) mode(domain string) (string, error) {
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
