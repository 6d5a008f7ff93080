// Package presenceapi is the read-only presence API of the admin listener
// (the seed's "watcher" comment): GET /v1/presence/{address} answers the
// last presence the gateway relayed for a user, and GET
// /v1/presence/stream sends every change as server-sent events.
//
// The View is fed by one-line hooks where the gateway learns presence
// (gateway/presence.go: an XMPP user's presence it relays to SIP, a SIP
// user's PIDF from a NOTIFY). It is separate from the gateway's own
// presence state so that readers never take the gateway's locks, and it is
// bounded: MaxEntries addresses, the least recently changed dropped first.
package presenceapi

import (
	"container/list"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xgw-gateway/xgw/gateway/translate"
)

// Sides of an address.
const (
	SideSIP  = "sip"
	SideXMPP = "xmpp"
)

// DefaultMaxEntries bounds the View (about 200 bytes an entry).
const DefaultMaxEntries = 100_000

// Presence is one user's presence as the API shows it.
type Presence struct {
	Address string `json:"address"`
	Side    string `json:"side"`
	// State is available, away, xa, dnd, chat or unavailable.
	State  string `json:"state"`
	Status string `json:"status"`
	// Resources are an XMPP user's available resources.
	Resources []string  `json:"resources,omitempty"`
	Updated   time.Time `json:"updated"`
}

func (p Presence) same(q Presence) bool {
	return p.Side == q.Side && p.State == q.State && p.Status == q.Status && slices.Equal(p.Resources, q.Resources)
}

// StateOf maps a translated presence to the API's state word.
func StateOf(p translate.Presence) string {
	switch {
	case p.Type == stanza.UnavailablePresence:
		return "unavailable"
	case p.Show == "":
		return "available"
	default:
		return p.Show
	}
}

// View is the presence the API reads; build it with NewView.
type View struct {
	max  int
	now  func() time.Time
	mu   sync.Mutex
	byID map[string]*list.Element // address -> element of order (*entry)
	// order has the least recently changed entry at the front.
	order *list.List
	subs  map[*Sub]struct{}
}

type entry struct {
	p   Presence
	res map[string]bool // XMPP: available resources
}

// NewView keeps at most max addresses (DefaultMaxEntries when max <= 0).
func NewView(max int) *View {
	if max <= 0 {
		max = DefaultMaxEntries
	}
	return &View{max: max, now: time.Now, byID: map[string]*list.Element{}, order: list.New(), subs: map[*Sub]struct{}{}}
}

// SetXMPP records XMPP user addr's presence after its resource sent p;
// agg is the user's aggregate presence (what the gateway relays).
func (v *View) SetXMPP(addr, resource string, p, agg translate.Presence) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.entryLocked(addr)
	switch {
	case p.Type == stanza.UnavailablePresence && resource == "":
		clear(e.res)
	case p.Type == stanza.UnavailablePresence:
		delete(e.res, resource)
	default:
		e.res[resource] = true
	}
	res := make([]string, 0, len(e.res))
	for r := range e.res {
		if r != "" {
			res = append(res, r)
		}
	}
	slices.Sort(res)
	v.putLocked(addr, e, Presence{Address: addr, Side: SideXMPP, State: StateOf(agg), Status: agg.Status, Resources: res})
}

// SetSIP records SIP user addr's presence from a NOTIFY's PIDF.
func (v *View) SetSIP(addr string, p translate.Presence) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.entryLocked(addr)
	v.putLocked(addr, e, Presence{Address: addr, Side: SideSIP, State: StateOf(p), Status: p.Status})
}

// Get is addr's presence, ok false when the gateway never relayed one.
func (v *View) Get(addr string) (Presence, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	el, ok := v.byID[addr]
	if !ok {
		return Presence{}, false
	}
	return el.Value.(*entry).p, true
}

// Len is the number of addresses kept.
func (v *View) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.order.Len()
}

func (v *View) entryLocked(addr string) *entry {
	if el, ok := v.byID[addr]; ok {
		return el.Value.(*entry)
	}
	return &entry{res: map[string]bool{}}
}

// putLocked stores p for addr and tells subscribers when it changed; a
// repeat (the same presence relayed to another contact) is no change.
func (v *View) putLocked(addr string, e *entry, p Presence) {
	el, known := v.byID[addr]
	if known && e.p.same(p) {
		return
	}
	p.Updated = v.now().UTC().Truncate(time.Second)
	e.p = p
	if known {
		v.order.MoveToBack(el)
	} else {
		v.byID[addr] = v.order.PushBack(e)
		for v.order.Len() > v.max {
			oldest := v.order.Remove(v.order.Front()).(*entry)
			delete(v.byID, oldest.p.Address)
		}
	}
	for s := range v.subs {
		s.offer(p)
	}
}

// Sub is one stream's subscription to changes.
type Sub struct {
	v      *View
	filter map[string]bool // nil: every address
	// C delivers changes; it is never closed.
	C chan Presence
	// Overflow is closed when C was full: the reader fell behind and the
	// subscription has ended.
	Overflow chan struct{}
}

// Subscribe delivers changes of the addresses in filter (all when empty)
// on a buffer of size buf; a change that finds it full ends the
// subscription instead of waiting, so a slow reader never holds up the
// gateway. Cancel ends it.
func (v *View) Subscribe(filter []string, buf int) *Sub {
	s := &Sub{v: v, C: make(chan Presence, buf), Overflow: make(chan struct{})}
	if len(filter) > 0 {
		s.filter = map[string]bool{}
		for _, a := range filter {
			s.filter[a] = true
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.subs[s] = struct{}{}
	return s
}

// Cancel ends the subscription; calling it twice is harmless.
func (s *Sub) Cancel() {
	s.v.mu.Lock()
	defer s.v.mu.Unlock()
	delete(s.v.subs, s)
}

// offer runs under the View's lock.
func (s *Sub) offer(p Presence) {
	if s.filter != nil && !s.filter[p.Address] {
		return
	}
	select {
	case s.C <- p:
	default:
		delete(s.v.subs, s)
		close(s.Overflow)
	}
}
