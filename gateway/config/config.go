// Package config loads and validates xgw's YAML configuration file, shared by
// `xgw check` and `xgw serve`.
//
// The key names are a contract: scripts and CI depend on them. They carry what
// the OCS 2007 R2 XMPP Gateway kept in its console and in
// TGWConsoleGUI.dll.config (SipIP, XmppIP, the SIP domain, the Edge host, the
// allow list and the certificate).
//
// Every problem is reported as an *Error naming the file, line, key, the value
// found, what was expected and how to fix it. Load returns every problem of a
// stage at once (first the YAML structure and types, then the values), so an
// admin fixes the file in few passes.
package config

import (
	"time"
)

// Config is the whole file.
type Config struct {
	SIP    SIP    `yaml:"sip"`
	XMPP   XMPP   `yaml:"xmpp"`
	TLS    TLS    `yaml:"tls"`
	Checks Checks `yaml:"checks"`
	Admin  Admin  `yaml:"admin"`
	Log    Log    `yaml:"log"`
	Trace  Trace  `yaml:"trace"`

	// File is the path the config was read from ("" when read from a stream).
	File string `yaml:"-"`
	// lines maps a dotted key path ("sip.domains[1]") to its line in File.
	lines map[string]int
}

// SIP is the side facing the Edge server (OCS/Lync/SfB Edge, Kamailio, ...).
type SIP struct {
	// Domains are the SIP domains served; each needs its own
	// _xmpp-server._tcp SRV record.
	Domains []string `yaml:"domains"`
	// Listen is where the Edge connects to us (the OCS gateway's SipIP).
	Listen string `yaml:"listen"`
	Edge   Edge   `yaml:"edge"`
}

// Edge is the SIP next hop.
type Edge struct {
	Host      string `yaml:"host"`
	Port      int    `yaml:"port"`
	Transport string `yaml:"transport"` // tls | tcp | udp
}

// XMPP is the side facing federated XMPP domains.
type XMPP struct {
	Listen       string `yaml:"listen"`        // the OCS gateway's XmppIP
	InternalFQDN string `yaml:"internal_fqdn"` // what the Edge uses; certificate CN must equal it
	ExternalFQDN string `yaml:"external_fqdn"` // what XMPP peers find via SRV
	PublicIP     string `yaml:"public_ip"`     // external_fqdn must resolve to it
	PrivateIP    string `yaml:"private_ip"`    // internal_fqdn must resolve to it

	Federation []Partner `yaml:"federation"` // the allow list
	// Open allows any domain that authenticates with at least dialback.
	Open bool `yaml:"open"`
	// Deny refuses these domains even when Open is set.
	Deny []string `yaml:"deny"`
	// DialbackSecret seeds XEP-0185 dialback keys. Empty: a random secret
	// per process (fine for one gateway; set it when several share a domain).
	DialbackSecret string `yaml:"dialback_secret"`
	// MaxStanzaSize bounds one stanza in bytes (default 262144).
	MaxStanzaSize int `yaml:"max_stanza_size"`
}

// Partner is one entry of the federation allow list.
type Partner struct {
	Domain string `yaml:"domain"`
	Auth   string `yaml:"auth"` // dialback | tls | tls+dialback
}

// TLS names the PEM files of the gateway's identity and of the Edge's CA.
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	CA   string `yaml:"ca"`
	// Domains gives a SIP domain a certificate of its own for XMPP peers:
	// presented when a peer asks for that domain by SNI, and on our
	// streams from it. Optional; other domains get cert/key.
	Domains []DomainCert `yaml:"domains"`
}

// DomainCert is one SIP domain's own certificate and key (PEM files).
type DomainCert struct {
	Domain string `yaml:"domain"`
	Cert   string `yaml:"cert"`
	Key    string `yaml:"key"`
}

// Checks tunes `xgw check`.
type Checks struct {
	// DNSServer sends every lookup to HOST:PORT instead of the system
	// resolver (staging DNS in CI).
	DNSServer string   `yaml:"dns_server"`
	HostsFile string   `yaml:"hosts_file"`
	Timeout   Duration `yaml:"timeout"`
}

// Admin is the HTTP listener for operators: /metrics, /healthz, /readyz.
type Admin struct {
	// Listen is HOST:PORT; loopback by default, since metrics name partners.
	Listen string `yaml:"listen"`
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// /metrics; required when Listen is not a loopback address.
	Token string `yaml:"token"`
	// CheckInterval is how often serve re-runs the check suite for
	// xgw_check_status.
	CheckInterval Duration `yaml:"check_interval"`
}

// Log tunes serve's log; a SIGHUP applies a changed level.
type Log struct {
	Level string `yaml:"level"` // debug | info | warn | error ("": --log-level)
}

// Trace is the protocol trace of `xgw serve` (gateway/trace): every SIP
// message and XMPP stanza, as JSON lines. Off unless Protocols is set here
// or by --trace.
type Trace struct {
	// File is the trace file, rotated to File.1, File.2, ...; under the
	// systemd unit it must be below /var/lib/xgw (ReadWritePaths).
	File string `yaml:"file"`
	// Protocols to trace: sip, xmpp, dns. Empty: no trace.
	Protocols []string `yaml:"protocols"`
	// Bodies keeps message bodies, presence status and notes in clear;
	// dialback keys and SASL payloads are hidden regardless.
	Bodies bool `yaml:"bodies"`
	// MaxSizeMB caps one file; MaxFiles counts the files kept, the current
	// one included.
	MaxSizeMB int `yaml:"max_size_mb"`
	MaxFiles  int `yaml:"max_files"`
}

// Duration is a time.Duration written as "5s" in YAML.
type Duration time.Duration

// Defaults applied by Load to keys left out.
const (
	DefaultEdgePort      = 5061
	DefaultEdgeTransport = "tls"
	DefaultHostsFile     = "/etc/hosts"
	DefaultTimeout       = Duration(5 * time.Second)
	DefaultMaxStanzaSize = 256 << 10
	MinMaxStanzaSize     = 10000
	XMPPServerPort       = 5269
	DefaultAdminListen   = "127.0.0.1:9269"
	DefaultCheckInterval = Duration(5 * time.Minute)
	MinCheckInterval     = Duration(10 * time.Second)
	DefaultTraceFile     = "/var/lib/xgw/trace.jsonl"
	DefaultTraceMaxSize  = 100 // MB
	DefaultTraceMaxFiles = 5
)

// Auth modes of a federation partner.
const (
	AuthDialback    = "dialback"
	AuthTLS         = "tls"
	AuthTLSDialback = "tls+dialback"
)

// Line reports the line of the key at path ("xmpp.public_ip",
// "sip.domains[1]"), or 0 when it is not in the file.
func (c *Config) Line(path string) int { return c.lines[path] }

func (c *Config) applyDefaults() {
	if c.SIP.Edge.Port == 0 {
		c.SIP.Edge.Port = DefaultEdgePort
	}
	if c.SIP.Edge.Transport == "" {
		c.SIP.Edge.Transport = DefaultEdgeTransport
	}
	if c.Checks.HostsFile == "" {
		c.Checks.HostsFile = DefaultHostsFile
	}
	if c.Checks.Timeout == 0 {
		c.Checks.Timeout = DefaultTimeout
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = DefaultAdminListen
	}
	if c.Admin.CheckInterval == 0 {
		c.Admin.CheckInterval = DefaultCheckInterval
	}
	if c.Trace.File == "" {
		c.Trace.File = DefaultTraceFile
	}
	if c.Trace.MaxSizeMB == 0 {
		c.Trace.MaxSizeMB = DefaultTraceMaxSize
	}
	if c.Trace.MaxFiles == 0 {
		c.Trace.MaxFiles = DefaultTraceMaxFiles
	}
	if c.XMPP.MaxStanzaSize == 0 {
		c.XMPP.MaxStanzaSize = DefaultMaxStanzaSize
	}
}

// ServesDomain reports whether d is one of our SIP domains.
func (c *Config) ServesDomain(d string) bool {
	for _, s := range c.SIP.Domains {
		if s == d {
			return true
		}
	}
	return false
}
