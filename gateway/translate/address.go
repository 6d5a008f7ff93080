package translate

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/net/idna"
	"mellium.im/xmpp/jid"

	"github.com/xgw-gateway/xgw/gateway/config"
)

// Side names the network an address lives on. The gateway only ever maps
// SIP-domain users and federated-XMPP-domain users; an address whose domain
// belongs to neither is refused (RFC 7247 §5.1, address mapping overview: the gateway is authoritative
// only for the domains it serves).
type Side int

const (
	// SideSIP is a user of one of our SIP domains (config sip.domains).
	SideSIP Side = iota + 1
	// SideXMPP is a user of a federated XMPP domain (config xmpp.federation,
	// or any domain when xmpp.open is set, minus xmpp.deny).
	SideXMPP
)

func (s Side) String() string {
	switch s {
	case SideSIP:
		return "SIP domain"
	case SideXMPP:
		return "federated XMPP domain"
	}
	return "unknown side"
}

// Sentinel errors wrapped by *AddressError; test with errors.Is.
var (
	// ErrUnknownDomain: the domain is neither one of our SIP domains nor an
	// allowed XMPP partner.
	ErrUnknownDomain = errors.New("domain not served by this gateway")
	// ErrUnmappable: the address cannot be expressed on the other side.
	ErrUnmappable = errors.New("address cannot be mapped")
)

// AddressError explains why an address was refused.
type AddressError struct {
	Addr     string // the address as received
	Found    string // what was wrong
	Expected string
	Fix      string
	Err      error // ErrUnknownDomain or ErrUnmappable, plus a cause when there is one
}

func (e *AddressError) Error() string {
	return fmt.Sprintf("translate: address %q: %s; expected %s; fix: %s", e.Addr, e.Found, e.Expected, e.Fix)
}

func (e *AddressError) Unwrap() error { return e.Err }

// Mapper maps addresses between the SIP domains we serve and federated XMPP
// domains (RFC 7247 §5). It is immutable after NewMapper and safe for
// concurrent use.
type Mapper struct {
	sipDomains  map[string]bool // normalized (Unicode, lower case) domain -> true
	xmppDomains map[string]bool
	deny        map[string]bool
	open        bool

	// PRECIS and IDNA dominate the cost of a translation, and a gateway sees
	// the same few thousand addresses again and again: cache SIP -> JID.
	mu    sync.RWMutex // guards cache
	cache map[uriKey]jid.JID
}

// uriKey is the identity part of a SIP URI as JIDFromURI reads it.
type uriKey struct {
	user, host, gr string
	side           Side
}

// maxCache bounds the address cache; when full it is dropped and refilled.
const maxCache = 4096

// NewMapper builds a Mapper. open allows any XMPP domain except the denied
// ones and our own SIP domains.
func NewMapper(sipDomains, xmppDomains []string, open bool, deny []string) (*Mapper, error) {
	m := &Mapper{sipDomains: map[string]bool{}, xmppDomains: map[string]bool{}, deny: map[string]bool{}, open: open, cache: map[uriKey]jid.JID{}}
	for _, set := range []struct {
		in  []string
		out map[string]bool
		key string
	}{{sipDomains, m.sipDomains, "sip.domains"}, {xmppDomains, m.xmppDomains, "xmpp.federation"}, {deny, m.deny, "xmpp.deny"}} {
		for _, d := range set.in {
			n, err := normalizeDomain(d)
			if err != nil {
				return nil, fmt.Errorf("translate: %s entry %q is not a domain name: %w", set.key, d, err)
			}
			set.out[n] = true
		}
	}
	if len(m.sipDomains) == 0 {
		return nil, errors.New("translate: no SIP domains; add sip.domains to the config")
	}
	for d := range m.xmppDomains {
		if m.sipDomains[d] {
			return nil, fmt.Errorf("translate: %q is both a SIP domain and an XMPP partner; remove it from xmpp.federation", d)
		}
	}
	return m, nil
}

// NewMapperFromConfig builds a Mapper from the gateway configuration.
func NewMapperFromConfig(c *config.Config) (*Mapper, error) {
	partners := make([]string, 0, len(c.XMPP.Federation))
	for _, p := range c.XMPP.Federation {
		partners = append(partners, p.Domain)
	}
	return NewMapper(c.SIP.Domains, partners, c.XMPP.Open, c.XMPP.Deny)
}

// SideOf reports which side serves domain (a JID domainpart or a SIP host),
// or 0 when neither does.
func (m *Mapper) SideOf(domain string) Side {
	d, err := normalizeDomain(domain)
	if err != nil {
		return 0
	}
	return m.sideOfNormalized(d)
}

func (m *Mapper) sideOfNormalized(d string) Side {
	switch {
	case m.sipDomains[d]:
		return SideSIP
	case m.deny[d]:
		return 0
	case m.xmppDomains[d] || m.open:
		return SideXMPP
	}
	return 0
}

// normalizeDomain gives the form jid.JID.Domainpart uses: IDNA U-labels,
// lower case, no trailing dot. An IP literal is refused: users live at
// domains.
func normalizeDomain(d string) (string, error) {
	if d == "" {
		return "", errors.New("empty domain")
	}
	// Fast path: lower-case ASCII LDH names are already in their final form.
	if isLowerLDH(d) && !strings.HasPrefix(d, "xn--") && !strings.Contains(d, ".xn--") {
		if allDigitsAndDots(d) {
			return "", errors.New("an IP address, not a domain name")
		}
		return d, nil
	}
	j, err := jid.New("", d, "")
	if err != nil {
		return "", err
	}
	out := j.Domainpart()
	if strings.HasPrefix(out, "[") || allDigitsAndDots(out) {
		return "", errors.New("an IP address, not a domain name")
	}
	return out, nil
}

func isLowerLDH(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return s[len(s)-1] != '.'
}

func allDigitsAndDots(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return true
}

// JIDFromURI maps a SIP or SIPS URI to a JID (RFC 7247 §5.4, SIP to XMPP):
//
//   - the host becomes the domainpart and must be served on side;
//   - the user part is percent-decoded (RFC 3261 §19.1.2), must then be
//     UTF-8 without control characters, is JID-escaped (XEP-0106 §4.2) so
//     that characters XMPP forbids in a localpart survive, and is prepared
//     with the PRECIS UsernameCaseMapped profile (RFC 7622 §3.3), which
//     folds case: sip:Alice@… and sip:alice@… are the same JID;
//   - a "gr" URI parameter (a GRUU, RFC 5627) becomes the resourcepart,
//     percent-decoded (RFC 7247 §5.3, instance-specific mapping); so does
//     the "opaque" parameter of a Microsoft GRUU (";gruu;opaque=user:epid:…",
//     MS-SIPRE), which OCS, Lync and Skype for Business Edges send;
//   - port, other URI parameters and URI headers are routing data, not
//     identity, and are dropped.
func (m *Mapper) JIDFromURI(u *sip.Uri, side Side) (jid.JID, error) {
	gr := instanceID(u)
	key := uriKey{user: u.User, host: u.Host, gr: gr, side: side}
	if u.Scheme == "sip" || u.Scheme == "sips" {
		m.mu.RLock()
		j, ok := m.cache[key]
		m.mu.RUnlock()
		if ok {
			return j, nil
		}
	}
	j, err := m.jidFromURI(u, side, gr)
	if err != nil {
		return jid.JID{}, err
	}
	key = uriKey{user: strings.Clone(u.User), host: strings.Clone(u.Host), gr: strings.Clone(gr), side: side}
	m.mu.Lock()
	if len(m.cache) >= maxCache {
		clear(m.cache)
	}
	m.cache[key] = j
	m.mu.Unlock()
	return j, nil
}

func (m *Mapper) jidFromURI(u *sip.Uri, side Side, gr string) (jid.JID, error) {
	if u.Scheme != "sip" && u.Scheme != "sips" && u.Scheme != "" {
		return jid.JID{}, m.addrErr(u.String(), "scheme "+u.Scheme+":", "a sip: or sips: URI", "send a SIP URI; tel: and other schemes have no XMPP form", ErrUnmappable, nil)
	}
	domain, err := normalizeDomain(u.Host)
	if err != nil {
		return jid.JID{}, m.addrErr(u.String(), "host "+u.Host+" ("+err.Error()+")", "a domain name", "address users as user@domain, not at an IP address", ErrUnmappable, err)
	}
	if got := m.sideOfNormalized(domain); got != side {
		return jid.JID{}, m.domainErr(u.String(), domain, side)
	}
	if u.User == "" {
		return jid.JID{}, m.addrErr(u.String(), "no user part", "user@"+domain, "address a user, not the domain itself", ErrUnmappable, nil)
	}
	user, err := percentDecode(u.User)
	if err != nil {
		return jid.JID{}, m.addrErr(u.String(), "user part "+err.Error(), "RFC 3261 user characters with %XX escapes of UTF-8", "percent-encode UTF-8 bytes, e.g. %C3%A9 for é", ErrUnmappable, err)
	}
	local, err := Escape(user)
	if err != nil {
		return jid.JID{}, m.addrErr(u.String(), err.Error(), "a user name without leading or trailing spaces", "rename the user", ErrUnmappable, err)
	}
	var resource string
	if gr != "" {
		resource, err = percentDecode(gr)
		if err != nil {
			return jid.JID{}, m.addrErr(u.String(), "gr parameter "+err.Error(), "a GRUU instance id", "percent-encode UTF-8 bytes in the gr parameter", ErrUnmappable, err)
		}
	}
	j, err := jid.New(local, domain, resource)
	if err != nil {
		return jid.JID{}, m.addrErr(u.String(), "no valid JID ("+err.Error()+")", "a user name PRECIS UsernameCaseMapped accepts (RFC 7622 §3.3)", "use letters, digits and punctuation; no spaces at either end, no symbols like U+2665", ErrUnmappable, err)
	}
	return j, nil
}

// URIFromJID maps a JID to a SIP URI (RFC 7247 §5.5, XMPP to SIP): the
// localpart is JID-unescaped (XEP-0106 §4.3) and percent-encoded where
// RFC 3261 §25.1 does not allow the character in a user part; the
// domainpart becomes the host in A-label (ASCII) form; a resourcepart
// becomes a "gr" parameter (RFC 7247 §5.3). Use Bare() first when the
// address of record is wanted (From and To headers).
func (m *Mapper) URIFromJID(j jid.JID, side Side) (sip.Uri, error) {
	domain := j.Domainpart()
	if got := m.sideOfNormalized(domain); got != side {
		return sip.Uri{}, m.domainErr(j.String(), domain, side)
	}
	local := j.Localpart()
	if local == "" {
		return sip.Uri{}, m.addrErr(j.String(), "no localpart", "user@"+domain, "address a user, not the server", ErrUnmappable, nil)
	}
	host := domain
	if !isLowerLDH(host) {
		var err error
		host, err = idna.Lookup.ToASCII(domain)
		if err != nil {
			return sip.Uri{}, m.addrErr(j.String(), "domain without an ASCII form ("+err.Error()+")", "an IDNA2008 domain", "fix the domain name", ErrUnmappable, err)
		}
	}
	u := sip.Uri{Scheme: "sip", User: percentEncode(Unescape(local), userSafe), Host: host}
	if r := j.Resourcepart(); r != "" {
		if isMSOpaque(r) {
			u.UriParams = sip.HeaderParams{{K: "opaque", V: percentEncode(r, paramSafe)}, {K: "gruu"}}
		} else {
			u.UriParams = sip.HeaderParams{{K: "gr", V: percentEncode(r, paramSafe)}}
		}
	}
	return u, nil
}

// instanceID returns the GRUU instance of u: the RFC 5627 "gr" parameter,
// or the "opaque" parameter of a Microsoft ";gruu" URI; "" for an AOR.
func instanceID(u *sip.Uri) string {
	if gr, ok := u.UriParams.Get("gr"); ok {
		return gr
	}
	if u.UriParams.Has("gruu") {
		op, _ := u.UriParams.Get("opaque")
		return op
	}
	return ""
}

// isMSOpaque reports whether a resourcepart came from a Microsoft GRUU: the
// opaque values MS-SIPRE documents start with user:, app: or srvr:.
func isMSOpaque(r string) bool {
	return strings.HasPrefix(r, "user:epid:") || strings.HasPrefix(r, "app:") || strings.HasPrefix(r, "srvr:")
}

func (m *Mapper) domainErr(addr, domain string, want Side) error {
	got := m.sideOfNormalized(domain)
	if got == 0 {
		fix := "add it to sip.domains (our users) or xmpp.federation (partners)"
		if m.deny[domain] {
			fix = "it is listed in xmpp.deny; remove it there to allow it"
		}
		return m.addrErr(addr, "domain "+domain+" is not served", "a "+want.String(), fix, ErrUnknownDomain, nil)
	}
	return m.addrErr(addr, "domain "+domain+" is a "+got.String(), "a "+want.String(), "check the direction: SIP users write to XMPP partners and back", ErrUnmappable, nil)
}

func (m *Mapper) addrErr(addr, found, expected, fix string, kind, cause error) error {
	err := kind
	if cause != nil {
		err = fmt.Errorf("%w: %w", kind, cause)
	}
	return &AddressError{Addr: addr, Found: found, Expected: expected, Fix: fix, Err: err}
}

// escapable are the characters XEP-0106 §3.2 escapes in a localpart.
const escapable = ` "&'/:<>@\`

// Escape applies XEP-0106 §4.2 JID escaping to a user name so that it can be
// used as a localpart: each of ` "&'/:<>@` becomes \xx (lower-case hex); a
// backslash is escaped only when it starts a sequence that would otherwise
// unescape. A name beginning or ending with a space is refused, as the XEP
// requires.
func Escape(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return "", fmt.Errorf("user name %q begins or ends with a space, which XEP-0106 §4.2 forbids", s)
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if needsEscape(s, i) {
			n++
		}
	}
	if n == 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(s, i) {
			b.WriteByte('\\')
			b.WriteByte(hexLower[c>>4])
			b.WriteByte(hexLower[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

func needsEscape(s string, i int) bool {
	c := s[i]
	if c == '\\' {
		return i+2 < len(s) && escapeCode(s[i+1], s[i+2]) != 0
	}
	return strings.IndexByte(escapable, c) >= 0
}

// Unescape reverses XEP-0106 §4.3: every \xx that names one of the escaped
// characters (20 22 26 27 2f 3a 3c 3e 40 5c) becomes that character; any
// other backslash is kept as is. Written here because mellium's
// jid.Unescape mangles escapes after byte 1 (see LIBRARIES.md §2.3).
func Unescape(s string) string {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+2 < len(s) {
			if r := escapeCode(s[i+1], s[i+2]); r != 0 {
				b.WriteByte(r)
				i += 2
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// escapeCode returns the character a two-digit XEP-0106 escape names, or 0.
func escapeCode(h, l byte) byte {
	if !isHexLower(h) || !isHexLower(l) {
		return 0
	}
	c := unhex(h)<<4 | unhex(l)
	if strings.IndexByte(escapable, c) < 0 {
		return 0
	}
	return c
}

const hexLower = "0123456789abcdef"
const hexUpper = "0123456789ABCDEF"

func isHexLower(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

func isHex(c byte) bool { return isHexLower(c) || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// percentDecode undoes RFC 3261 §19.1.2 escaping and checks that the result
// is UTF-8 without control characters.
func percentDecode(s string) (string, error) {
	out := s
	if strings.IndexByte(s, '%') >= 0 {
		b := make([]byte, 0, len(s))
		for i := 0; i < len(s); i++ {
			if s[i] != '%' {
				b = append(b, s[i])
				continue
			}
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", fmt.Errorf("has a broken %%-escape at byte %d in %q", i, s)
			}
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		}
		out = string(b)
	}
	if !utf8.ValidString(out) {
		return "", fmt.Errorf("%q decodes to bytes that are not UTF-8", s)
	}
	for i := 0; i < len(out); i++ {
		if out[i] < 0x20 || out[i] == 0x7f {
			return "", fmt.Errorf("%q contains control character 0x%02X", s, out[i])
		}
	}
	return out, nil
}

// Character classes of RFC 3261 §25.1 that may appear unescaped.
const (
	markChars     = "-_.!~*'()"
	userUnreserve = "&=+$,;?/"
	paramUnreserv = "[]/:&+$"
)

func userSafe(c byte) bool  { return isAlnum(c) || strings.IndexByte(markChars+userUnreserve, c) >= 0 }
func paramSafe(c byte) bool { return isAlnum(c) || strings.IndexByte(markChars+paramUnreserv, c) >= 0 }
func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// percentEncode escapes every byte safe does not allow (RFC 3261 §19.1.2:
// UTF-8 octets as %XX).
func percentEncode(s string, safe func(byte) bool) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !safe(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if safe(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hexUpper[c>>4], hexUpper[c&15])
	}
	return string(b)
}
