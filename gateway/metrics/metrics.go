// Package metrics holds xgw's Prometheus metrics. Their names and labels
// are a contract (README, "Metrics"): dashboards and alerts depend on them.
//
// Counters are fed by the gateway's glue through nil-safe methods, so a
// gateway built without metrics pays nothing; gauges (streams,
// subscriptions, Edge) are read at scrape time from a State.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Label values of the relay direction.
const (
	SIPToXMPP = "sip_to_xmpp"
	XMPPToSIP = "xmpp_to_sip"
)

// Metrics is one registry with xgw's collectors.
type Metrics struct {
	reg       *prometheus.Registry
	dialback  *prometheus.CounterVec
	stanzas   *prometheus.CounterVec
	requests  *prometheus.CounterVec
	relayed   *prometheus.CounterVec
	bounces   *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	checks    *prometheus.GaugeVec
	checksRun prometheus.Gauge
}

// New registers xgw's metrics, plus the Go runtime and process collectors,
// on a registry of its own (not the global one, so tests can build many).
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		dialback: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xgw_dialback_total",
			Help: "Dialback (XEP-0220) outcomes: direction in (a peer's claim we verified) or out (our claim), result valid, invalid or error."},
			[]string{"direction", "result"}),
		stanzas: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xgw_stanzas_total",
			Help: "XMPP stanzas relayed: direction in (from a partner to the gateway) or out, kind message, presence or iq."},
			[]string{"direction", "kind"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xgw_sip_requests_total",
			Help: "SIP requests handled (in, from the Edge) or sent (out), by method and final status class (2xx..6xx, none: no final response)."},
			[]string{"direction", "method", "status_class"}),
		relayed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xgw_relayed_messages_total",
			Help: "Messages (text or typing) relayed: sip_to_xmpp (handed to the s2s pool) or xmpp_to_sip (accepted by the Edge)."},
			[]string{"direction"}),
		bounces: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xgw_bounces_total",
			Help: "Messages not delivered, by the side whose sender was told (sip or xmpp) and the XMPP error condition."},
			[]string{"side", "cause"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "xgw_relay_latency_seconds",
			Help:    "Time from receiving a message to its hand-off: to the s2s pool (sip_to_xmpp) or to the Edge's 2xx (xmpp_to_sip).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"direction"}),
		checks: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "xgw_check_status",
			Help: "Last result of each periodic check: 0 pass, 1 warn, 2 fail, 3 skip."},
			[]string{"id", "target"}),
		checksRun: prometheus.NewGauge(prometheus.GaugeOpts{Name: "xgw_check_last_run_timestamp_seconds",
			Help: "When the periodic check suite last finished (Unix time)."}),
	}
	m.reg.MustRegister(m.dialback, m.stanzas, m.requests, m.relayed, m.bounces, m.latency, m.checks, m.checksRun,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Register adds a collector, e.g. the scrape-time State collector.
func (m *Metrics) Register(c prometheus.Collector) error { return m.reg.Register(c) }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Dialback counts one dialback outcome.
func (m *Metrics) Dialback(direction, result string) {
	if m != nil {
		m.dialback.WithLabelValues(direction, result).Inc()
	}
}

// Stanza counts one stanza relayed in direction ("in" or "out").
func (m *Metrics) Stanza(direction, kind string) {
	if m != nil {
		m.stanzas.WithLabelValues(direction, kind).Inc()
	}
}

// SIPRequest counts one SIP request with its final status (0: none).
func (m *Metrics) SIPRequest(direction, method string, status int) {
	if m != nil {
		m.requests.WithLabelValues(direction, strings.ToUpper(method), StatusClass(status)).Inc()
	}
}

// Relayed counts one relayed message and observes the time since start.
func (m *Metrics) Relayed(direction string, start time.Time) {
	if m != nil {
		m.relayed.WithLabelValues(direction).Inc()
		m.latency.WithLabelValues(direction).Observe(time.Since(start).Seconds())
	}
}

// Bounce counts one undelivered message; cause is an XMPP condition, and
// anything outside RFC 6120's list counts as undefined-condition, since a
// remote peer chooses it.
func (m *Metrics) Bounce(side, cause string) {
	if m != nil {
		m.bounces.WithLabelValues(side, Condition(cause)).Inc()
	}
}

// CheckResult is one check's outcome for SetChecks.
type CheckResult struct {
	ID, Target string
	Status     int // 0 pass, 1 warn, 2 fail, 3 skip
}

// SetChecks replaces the check gauges with one run's results.
func (m *Metrics) SetChecks(results []CheckResult, at time.Time) {
	if m == nil {
		return
	}
	m.checks.Reset() // a target that disappeared must not linger
	for _, r := range results {
		m.checks.WithLabelValues(r.ID, r.Target).Set(float64(r.Status))
	}
	m.checksRun.Set(float64(at.UnixNano()) / 1e9)
}

// StatusClass is "2xx".."6xx" for a final status, "none" without one.
func StatusClass(status int) string {
	if status < 100 || status > 699 {
		return "none"
	}
	return strconv.Itoa(status/100) + "xx"
}

// conditions are RFC 6120 §8.3.3's stanza error conditions.
var conditions = map[string]bool{
	"bad-request": true, "conflict": true, "feature-not-implemented": true, "forbidden": true, "gone": true,
	"internal-server-error": true, "item-not-found": true, "jid-malformed": true, "not-acceptable": true,
	"not-allowed": true, "not-authorized": true, "policy-violation": true, "recipient-unavailable": true,
	"redirect": true, "registration-required": true, "remote-server-not-found": true,
	"remote-server-timeout": true, "resource-constraint": true, "service-unavailable": true,
	"subscription-required": true, "undefined-condition": true, "unexpected-request": true,
}

// Condition bounds a condition label to RFC 6120's list.
func Condition(c string) string {
	if conditions[c] {
		return c
	}
	return "undefined-condition"
}
