package sip

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/gateway/trace"
)

// Config is everything an Endpoint needs. Zero tuning values take the
// defaults below.
type Config struct {
	// Domains are our SIP domains (the gateway's own users live in them).
	Domains []string
	// Listen is where the Edge connects to us, HOST:PORT ("127.0.0.1:0" in
	// tests). ListenTransport is tls, tcp or udp; empty means Edge.Transport.
	Listen          string
	ListenTransport string
	// Contact is the HOST:PORT put in our Contact headers, where the Edge
	// sends in-dialog requests. Empty means the bound listener address.
	Contact string
	Edge    Edge

	// Certificate is our identity for mutual TLS; RootCAs verifies the Edge
	// both when we dial it and when it dials us (tls.ca).
	Certificate *tls.Certificate
	RootCAs     *x509.CertPool

	Handler Handler
	// Store keeps subscriptions across restarts; nil keeps them in memory.
	Store  Store
	Logger *slog.Logger
	// Resolver looks up Edge.Host; nil means the system resolver.
	Resolver *net.Resolver
	// Tracer records every SIP message read or written (nil: no trace).
	Tracer *trace.Tracer

	HandlerTimeout    time.Duration // default 10s, well under Timer F (32 s)
	RequestTimeout    time.Duration // our requests without a deadline; default 32s
	KeepaliveInterval time.Duration // OPTIONS to the Edge; default 30s, <0 disables
	MinExpires        time.Duration // below: 423 Interval Too Brief; default 60s
	MaxExpires        time.Duration // above: lowered; default 1h
	DefaultExpires    time.Duration // SUBSCRIBE without Expires; default 1h (RFC 3856 §6.4)
	MaxMessageSize    int           // whole message; default 64 KiB
	MaxBodySize       int           // body; default 32 KiB
	MaxConcurrent     int           // requests handled at once; default 256
	// Events are the event packages we accept (default presence).
	Events []string
	// Accept lists the body types we take, for OPTIONS and SUBSCRIBE.
	Accept []string
}

// Edge is the SIP next hop, the Edge server or proxy.
type Edge struct {
	Host      string
	Port      int
	Transport string // tls | tcp | udp
	// Name is the Edge's FQDN: its certificate must be valid for it, as
	// server and as client. Empty means Host.
	Name string
}

// Defaults for zero Config values.
const (
	DefaultHandlerTimeout    = 10 * time.Second
	DefaultRequestTimeout    = 32 * time.Second
	DefaultKeepaliveInterval = 30 * time.Second
	DefaultMinExpires        = 60 * time.Second
	DefaultMaxExpires        = time.Hour
	DefaultExpires           = time.Hour
	DefaultMaxMessageSize    = 64 << 10
	DefaultMaxBodySize       = 32 << 10
	DefaultMaxConcurrent     = 256
)

// Body types we take by default: RFC 7572 text, CPIM, PIDF, isComposing.
var defaultAccept = []string{"text/plain", "message/cpim", "application/pidf+xml", "application/im-iscomposing+xml"}

// FromConfig builds a Config from the gateway's configuration file, reading
// the certificate, key and CA files it names.
func FromConfig(c *config.Config, h Handler, st Store, log *slog.Logger) (Config, error) {
	cfg := Config{
		Domains: c.SIP.Domains,
		Listen:  c.SIP.Listen,
		Edge: Edge{
			Host:      c.SIP.Edge.Host,
			Port:      c.SIP.Edge.Port,
			Transport: c.SIP.Edge.Transport,
		},
		Handler: h,
		Store:   st,
		Logger:  log,
	}
	// The Edge reaches us by our internal name (the OCS gateway's SipIP
	// side); Contact carries it with the listening port.
	if _, port, err := net.SplitHostPort(c.SIP.Listen); err == nil && c.XMPP.InternalFQDN != "" {
		cfg.Contact = net.JoinHostPort(c.XMPP.InternalFQDN, port)
	}
	if c.TLS.Cert != "" || c.TLS.Key != "" {
		pair, err := tls.LoadX509KeyPair(c.Path(c.TLS.Cert), c.Path(c.TLS.Key))
		if err != nil {
			return Config{}, fmt.Errorf("sip: tls.cert/tls.key: %w (expected a PEM certificate and its private key)", err)
		}
		cfg.Certificate = &pair
	}
	if c.TLS.CA != "" {
		pemData, err := os.ReadFile(c.Path(c.TLS.CA))
		if err != nil {
			return Config{}, fmt.Errorf("sip: tls.ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return Config{}, fmt.Errorf("sip: tls.ca %s: found no PEM certificate, expected the CA that signed the Edge's certificate", c.TLS.CA)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// withDefaults fills zero values and checks what cannot work.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	c.Edge.Transport = strings.ToLower(c.Edge.Transport)
	if c.Edge.Transport == "" {
		c.Edge.Transport = "tls"
	}
	if c.ListenTransport == "" {
		c.ListenTransport = c.Edge.Transport
	}
	c.ListenTransport = strings.ToLower(c.ListenTransport)
	for _, tp := range []string{c.Edge.Transport, c.ListenTransport} {
		if tp != "tls" && tp != "tcp" && tp != "udp" {
			errs = append(errs, fmt.Errorf("sip: transport %q: expected tls, tcp or udp", tp))
		}
	}
	if c.Edge.Port == 0 {
		switch c.Edge.Transport {
		case "tls":
			c.Edge.Port = 5061
		default:
			c.Edge.Port = 5060
		}
	}
	if c.Edge.Name == "" {
		c.Edge.Name = c.Edge.Host
	}
	if c.Handler == nil {
		errs = append(errs, errors.New("sip: Config.Handler is nil, expected the gateway's Handler"))
	}
	if c.Edge.Transport == "tls" || c.ListenTransport == "tls" {
		if c.Certificate == nil {
			errs = append(errs, errors.New("sip: TLS needs our certificate (tls.cert, tls.key) for mutual TLS with the Edge"))
		}
		if c.RootCAs == nil {
			errs = append(errs, errors.New("sip: TLS needs the CA of the Edge's certificate (tls.ca)"))
		}
		if c.Edge.Name == "" {
			errs = append(errs, errors.New("sip: TLS needs the Edge's FQDN (sip.edge.host) to verify its certificate"))
		}
	}
	if c.Store == nil {
		c.Store = NewMemoryStore()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDur(&c.HandlerTimeout, DefaultHandlerTimeout)
	setDur(&c.RequestTimeout, DefaultRequestTimeout)
	setDur(&c.KeepaliveInterval, DefaultKeepaliveInterval)
	setDur(&c.MinExpires, DefaultMinExpires)
	setDur(&c.MaxExpires, DefaultMaxExpires)
	setDur(&c.DefaultExpires, DefaultExpires)
	if c.MinExpires > c.MaxExpires {
		errs = append(errs, fmt.Errorf("sip: MinExpires %v is above MaxExpires %v", c.MinExpires, c.MaxExpires))
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.MaxBodySize == 0 {
		c.MaxBodySize = DefaultMaxBodySize
	}
	if c.MaxBodySize > c.MaxMessageSize {
		c.MaxBodySize = c.MaxMessageSize
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if len(c.Events) == 0 {
		c.Events = []string{"presence"}
	}
	if len(c.Accept) == 0 {
		c.Accept = defaultAccept
	}
	return c, errors.Join(errs...)
}
