package gateway

import (
	"context"
	"sync"
)

// DefaultMaxPending bounds the XMPP messages accepted for the SIP side and
// not yet answered by the Edge, over all conversations.
const DefaultMaxPending = 1024

// lanes runs jobs one at a time per key and concurrently across keys.
//
// One s2s stream carries every conversation between a partner domain and
// ours, and the xmpp layer calls the Handler from the stream's reader. If
// the Handler waited for the Edge's answer there, the partner's whole
// traffic would move at one message per Edge round trip (a few hundred per
// second over a WAN). Keyed by (sender, recipient), messages of one
// conversation still reach the Edge in order (RFC 7572 §6 leaves ordering
// to the transport; users expect it), while other conversations proceed.
// A lane's goroutine exits when its queue is empty.
type lanes struct {
	sem chan struct{} // one slot per job accepted and not finished

	mu sync.Mutex // guards m
	m  map[string]*lane
}

type lane struct {
	q []func() // guarded by lanes.mu
}

func newLanes(maxPending int) *lanes {
	return &lanes{sem: make(chan struct{}, maxPending), m: map[string]*lane{}}
}

// submit queues job on key's lane. When maxPending jobs wait already it
// blocks until one finishes or ctx ends (then it returns ctx's error and
// job never runs), which slows the stream that delivers them: backpressure
// instead of unbounded memory.
func (ls *lanes) submit(ctx context.Context, key string, job func()) error {
	select {
	case ls.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	ls.mu.Lock()
	l := ls.m[key]
	start := l == nil
	if start {
		l = &lane{}
		ls.m[key] = l
	}
	l.q = append(l.q, job)
	ls.mu.Unlock()
	if start {
		go ls.run(key, l)
	}
	return nil
}

func (ls *lanes) run(key string, l *lane) {
	for {
		ls.mu.Lock()
		if len(l.q) == 0 {
			delete(ls.m, key)
			ls.mu.Unlock()
			return
		}
		job := l.q[0]
		l.q[0] = nil
		l.q = l.q[1:]
		ls.mu.Unlock()
		job()
		<-ls.sem
	}
}
