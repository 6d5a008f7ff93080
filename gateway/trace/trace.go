// Package trace is xgw's protocol trace, what OCSLogger was for the OCS
// gateway: every SIP message and XMPP stanza or stream element the gateway
// reads or writes, as one JSON line each, with time, direction, peer,
// domains and the stream ID or Call-ID, so that "I have connectivity ...
// and nothing" can be answered by reading what went over the wire.
//
// A Tracer is cheap to leave off: the hooks in gateway/xmpp and gateway/sip
// hold a *Tracer that is nil when tracing is off and test it before they
// build anything. When it is on, a hook copies the message and hands it to
// a buffered channel without waiting; one goroutine redacts, encodes and
// writes (rotating the file by size). When the buffer is full the record is
// dropped and counted, and a "N trace records dropped" record says so
// later: tracing never slows relaying.
//
// Redaction (redact.go) happens in that goroutine. Bodies are hidden unless
// Options.Bodies; dialback keys and SASL payloads always are.
package trace

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SchemaVersion is the version of the record format (Record's JSON).
const SchemaVersion = 1

// Proto is a set of traced protocols.
type Proto uint8

const (
	SIP Proto = 1 << iota
	XMPP
	DNS
)

// Protocol names as written in records, flags and the config.
var protoNames = []struct {
	p    Proto
	name string
}{{SIP, "sip"}, {XMPP, "xmpp"}, {DNS, "dns"}}

// ParseProtocols reads names such as ["sip", "xmpp"] (case-insensitive).
func ParseProtocols(names []string) (Proto, error) {
	var set Proto
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		found := false
		for _, pn := range protoNames {
			if pn.name == n {
				set |= pn.p
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("trace protocol %q: expected sip, xmpp or dns", n)
		}
	}
	return set, nil
}

// String lists the set as "sip,xmpp".
func (p Proto) String() string {
	var names []string
	for _, pn := range protoNames {
		if p&pn.p != 0 {
			names = append(names, pn.name)
		}
	}
	return strings.Join(names, ",")
}

// Dir is the direction of a message as seen by the gateway.
type Dir string

const (
	In  Dir = "in"
	Out Dir = "out"
)

// Event is what a hook reports: one message read or written.
type Event struct {
	Proto Proto
	Dir   Dir
	// Peer is the remote address (HOST:PORT), Local the address of ours
	// when known.
	Peer, LocalAddr string
	// Local and Remote are the domains: ours and the partner's (XMPP
	// stream header, SIP From/To when left empty).
	Local, Remote string
	// Stream is the XMPP stream ID (ours on inbound streams, the peer's
	// on the streams we initiate, as dialback uses them).
	Stream string
	// Msg is the message as read or written; the Tracer copies it.
	Msg []byte

	at time.Time // set by Trace
}

// Record is one line of the trace file.
type Record struct {
	Time      time.Time `json:"time"`
	Proto     string    `json:"proto"` // sip, xmpp, dns; "xgw" for the trace's own notes
	Dir       Dir       `json:"dir,omitempty"`
	Peer      string    `json:"peer,omitempty"`
	LocalAddr string    `json:"local_addr,omitempty"`
	Local     string    `json:"local,omitempty"`
	Remote    string    `json:"remote,omitempty"`
	Stream    string    `json:"stream,omitempty"`
	CallID    string    `json:"call_id,omitempty"`
	// Thread is an XMPP message's <thread/>, which carries the Call-ID of
	// the SIP MESSAGE it was translated from (and back).
	Thread   string `json:"thread,omitempty"`
	Size     int    `json:"size,omitempty"` // bytes on the wire, before redaction
	Redacted bool   `json:"redacted,omitempty"`
	Msg      string `json:"msg,omitempty"`
	// Note is set on the trace's own records: start, drops.
	Note          string `json:"note,omitempty"`
	Dropped       uint64 `json:"dropped,omitempty"`
	SchemaVersion int    `json:"schema_version,omitempty"`
}

// Defaults for Options left zero.
const (
	DefaultMaxSize   = 100 << 20 // bytes per file
	DefaultMaxFiles  = 5         // the current file and 4 rotated ones
	DefaultBuffer    = 4096      // records waiting for the writer
	DefaultDropEvery = 10 * time.Second
	// DefaultMaxQueued bounds the bytes of messages waiting for the
	// writer, so that a stalled disk costs at most this much memory
	// whatever the message sizes.
	DefaultMaxQueued = 16 << 20
)

// Options configure a Tracer.
type Options struct {
	// File is the trace file; rotated to File.1 ... File.(MaxFiles-1).
	File string
	// Writer, when set, receives the records instead of File (no rotation).
	Writer    io.Writer
	Protocols Proto
	// Bodies keeps message bodies in clear (never dialback keys or SASL).
	Bodies bool
	// MaxSize caps one file in bytes; MaxFiles counts the files kept,
	// the current one included.
	MaxSize  int64
	MaxFiles int
	// Buffer is the number of records that may wait for the writer, and
	// MaxQueued their bytes in all.
	Buffer    int
	MaxQueued int64
	// DropEvery is how often a "records dropped" note is written while
	// records are being dropped.
	DropEvery time.Duration
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Tracer writes trace records. A nil *Tracer traces nothing.
type Tracer struct {
	o       Options
	ch      chan Event
	w       io.Writer
	closer  io.Closer
	dropped atomic.Uint64
	queued  atomic.Int64 // bytes of messages in ch
	done    chan struct{}
	err     error // the first write error, after done

	closeOnce sync.Once
	mu        sync.RWMutex // guards closed against sends on ch
	closed    bool
}

// Open starts a Tracer writing to o.File (created with mode 0600: the trace
// names users and partners) or o.Writer.
func Open(o Options) (*Tracer, error) {
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = DefaultMaxQueued
	}
	if o.DropEvery <= 0 {
		o.DropEvery = DefaultDropEvery
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Protocols == 0 {
		return nil, errors.New("trace: no protocols selected, expected some of sip, xmpp, dns")
	}
	t := &Tracer{o: o, ch: make(chan Event, o.Buffer), done: make(chan struct{})}
	switch {
	case o.Writer != nil:
		t.w = o.Writer
	case o.File != "":
		rf, err := openRotating(o.File, o.MaxSize, o.MaxFiles)
		if err != nil {
			return nil, err
		}
		rf.header = t.startRecord
		t.w, t.closer = rf, rf
	default:
		return nil, errors.New("trace: no file given, expected a path such as /var/lib/xgw/trace.jsonl")
	}
	if line, err := json.Marshal(t.startRecord()); err == nil {
		if _, err := t.w.Write(append(line, '\n')); err != nil {
			if t.closer != nil {
				t.closer.Close()
			}
			return nil, fmt.Errorf("trace: %w", err)
		}
	}
	go t.run()
	return t, nil
}

// startRecord opens every file, so that a rotated file read alone still
// says what it holds.
func (t *Tracer) startRecord() Record {
	bodies := "bodies redacted"
	if t.o.Bodies {
		bodies = "bodies in clear"
	}
	return Record{Time: t.o.Now().UTC(), Proto: "xgw", SchemaVersion: SchemaVersion,
		Note: fmt.Sprintf("trace of %s, %s (dialback keys and SASL always redacted)", t.o.Protocols, bodies)}
}

// On reports whether p is traced; false on a nil Tracer.
func (t *Tracer) On(p Proto) bool { return t != nil && t.o.Protocols&p != 0 }

// Trace records ev unless its protocol is off. It never blocks: with the
// buffer full (in records or bytes) the record is dropped and counted.
func (t *Tracer) Trace(ev Event) {
	if !t.On(ev.Proto) {
		return
	}
	if len(t.ch) == cap(t.ch) { // full: drop before copying
		t.dropped.Add(1)
		return
	}
	n := int64(len(ev.Msg))
	if t.queued.Add(n) > t.o.MaxQueued {
		t.queued.Add(-n)
		t.dropped.Add(1)
		return
	}
	ev.Msg = append([]byte(nil), ev.Msg...)
	ev.at = t.o.Now().UTC()
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		t.queued.Add(-n)
		return
	}
	select {
	case t.ch <- ev:
	default:
		t.queued.Add(-n)
		t.dropped.Add(1)
	}
}

// Dropped is the number of records dropped so far because the writer was
// behind.
func (t *Tracer) Dropped() uint64 {
	if t == nil {
		return 0
	}
	return t.dropped.Load()
}

// Close writes what is buffered and closes the file. It returns the first
// write error, if any.
func (t *Tracer) Close() error {
	if t == nil {
		return nil
	}
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		close(t.ch)
		t.mu.Unlock()
		<-t.done
		if t.closer != nil {
			if err := t.closer.Close(); err != nil && t.err == nil {
				t.err = err
			}
		}
	})
	return t.err
}

func (t *Tracer) run() {
	defer close(t.done)
	// Lines are batched while records keep coming and written whole, so a
	// rotation never splits one.
	var batch bytes.Buffer
	flush := func() {
		if batch.Len() == 0 {
			return
		}
		if _, err := t.w.Write(batch.Bytes()); err != nil && t.err == nil {
			t.err = err
		}
		batch.Reset()
	}
	tick := time.NewTicker(t.o.DropEvery)
	defer tick.Stop()
	var reported uint64
	write := func(r Record) {
		line, err := json.Marshal(r)
		if err != nil {
			return // a Record always marshals; keep going regardless
		}
		batch.Write(line)
		batch.WriteByte('\n')
		if batch.Len() >= 64<<10 {
			flush()
		}
	}
	noteDrops := func() {
		if n := t.dropped.Load(); n > reported {
			write(Record{Time: t.o.Now().UTC(), Proto: "xgw", Dropped: n - reported,
				Note: fmt.Sprintf("%d trace records dropped (the writer was behind)", n-reported)})
			reported = n
		}
	}
	for {
		select {
		case ev, ok := <-t.ch:
			if !ok {
				noteDrops()
				flush()
				return
			}
			t.queued.Add(-int64(len(ev.Msg)))
			write(t.record(ev))
			if len(t.ch) == 0 {
				flush() // records reach the file while the gateway is quiet
			}
		case <-tick.C:
			noteDrops()
			flush()
		}
	}
}

// record redacts ev and fills the fields read from the message.
func (t *Tracer) record(ev Event) Record {
	r := Record{Time: ev.at, Dir: ev.Dir, Peer: ev.Peer, LocalAddr: ev.LocalAddr,
		Local: ev.Local, Remote: ev.Remote, Stream: ev.Stream, Size: len(ev.Msg)}
	var msg []byte
	switch ev.Proto {
	case SIP:
		r.Proto = "sip"
		var h sipHead
		msg, h = RedactSIP(ev.Msg, t.o.Bodies)
		r.CallID = h.callID
		if r.Local == "" && r.Remote == "" {
			r.Local, r.Remote = h.domains(ev.Dir)
		}
	case XMPP:
		r.Proto = "xmpp"
		var x xmlInfo
		msg, x = RedactXML(ev.Msg, t.o.Bodies)
		r.Thread = x.thread
	default:
		r.Proto = "dns"
		msg = ev.Msg
	}
	r.Redacted = len(msg) != len(ev.Msg) || string(msg) != string(ev.Msg)
	r.Msg = string(msg)
	return r
}
