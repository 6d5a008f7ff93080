package metrics

import "github.com/prometheus/client_golang/prometheus"

// Stream is one live s2s stream as the streams gauge counts it.
type Stream struct {
	Direction string // in, out or verify
	// Partner is a configured federation partner's domain, or "other"
	// (open federation, or not yet known): the caller bounds it.
	Partner string
	State   string // negotiating or authenticated
}

// State is what the gauges read at scrape time, from the gateway's own
// bookkeeping rather than from counters kept in step with it.
type State interface {
	MetricStreams() []Stream
	MetricSubscriptions() int
	MetricEdgeUp() bool
}

var (
	streamsDesc = prometheus.NewDesc("xgw_xmpp_streams",
		"Live XMPP s2s streams by direction (in, out, verify), partner (a configured one, else other) and state (negotiating, authenticated).",
		[]string{"direction", "partner", "state"}, nil)
	subsDesc = prometheus.NewDesc("xgw_sip_subscriptions",
		"Live SIP subscription dialogs (presence), both roles.", nil, nil)
	edgeDesc = prometheus.NewDesc("xgw_edge_up",
		"1 when the Edge answered the last OPTIONS keepalive, else 0.", nil, nil)
)

type stateCollector struct{ st State }

// NewStateCollector reads the gauges from st on each scrape.
func NewStateCollector(st State) prometheus.Collector { return stateCollector{st} }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- streamsDesc
	ch <- subsDesc
	ch <- edgeDesc
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[Stream]int{}
	for _, s := range c.st.MetricStreams() {
		counts[s]++
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(streamsDesc, prometheus.GaugeValue, float64(n), s.Direction, s.Partner, s.State)
	}
	ch <- prometheus.MustNewConstMetric(subsDesc, prometheus.GaugeValue, float64(c.st.MetricSubscriptions()))
	up := 0.0
	if c.st.MetricEdgeUp() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(edgeDesc, prometheus.GaugeValue, up)
}
