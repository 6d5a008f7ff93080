package gateway

import (
	"github.com/miekg/dns"

	"github.com/xgw-gateway/xgw/gateway/trace"
)

// traceDNS records the resolver's queries and answers (the xmpp side's SRV
// and address lookups) in dig's text form. sipgo's own lookup of the Edge
// goes through the Go resolver and is not traced.
func traceDNS(t *trace.Tracer) func(out bool, server string, m *dns.Msg) {
	return func(out bool, server string, m *dns.Msg) {
		dir := trace.In
		if out {
			dir = trace.Out
		}
		t.Trace(trace.Event{Proto: trace.DNS, Dir: dir, Peer: server, Msg: []byte(m.String())})
	}
}
