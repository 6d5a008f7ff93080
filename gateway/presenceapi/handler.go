package presenceapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"
)

// Defaults of a Handler.
const (
	DefaultMaxStreams = 64
	DefaultStreamBuf  = 256
	DefaultHeartbeat  = 15 * time.Second
	// writeTimeout bounds one event's write: a client that stops reading
	// is dropped instead of holding a goroutine.
	writeTimeout = 10 * time.Second
	// maxFilter bounds ?address= values per stream.
	maxFilter = 1000
)

// Handler serves GET /v1/presence/{address} and GET /v1/presence/stream.
// It checks no token: the admin listener wraps it (admin.Handler.Presence).
type Handler struct {
	View       *View
	MaxStreams int           // concurrent streams; more get 503
	StreamBuf  int           // changes buffered per stream before overflow
	Heartbeat  time.Duration // comment line that keeps proxies from timing out

	streams atomic.Int64
	mux     *http.ServeMux
}

// NewHandler serves v with the defaults.
func NewHandler(v *View) *Handler {
	h := &Handler{View: v, MaxStreams: DefaultMaxStreams, StreamBuf: DefaultStreamBuf, Heartbeat: DefaultHeartbeat,
		mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /v1/presence/stream", h.stream)
	h.mux.HandleFunc("GET /v1/presence/{address}", h.get)
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Error is the body of every refusal.
type Error struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// ParseAddress accepts a bare user@domain address and returns it in the
// form the View keys by (domain lower-cased, as the gateway's JIDs are).
func ParseAddress(s string) (string, error) {
	j, err := jid.Parse(s)
	if err != nil || j.Localpart() == "" || j.Resourcepart() != "" || strings.ContainsAny(s, "/") {
		return "", fmt.Errorf("address %q: expected a bare user@domain such as alice@litware.test", s)
	}
	return j.Bare().String(), nil
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	addr, err := ParseAddress(r.PathValue("address"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, Error{"bad request", err.Error()})
		return
	}
	p, ok := h.View.Get(addr)
	if !ok {
		writeJSON(w, http.StatusNotFound, Error{"not found", fmt.Sprintf(
			"no presence known for %s: the gateway keeps the presence it relayed, for users with a subscription across it", addr)})
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (h *Handler) stream(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()["address"]
	if len(q) > maxFilter {
		writeJSON(w, http.StatusBadRequest, Error{"bad request", fmt.Sprintf("%d address filters: expected at most %d", len(q), maxFilter)})
		return
	}
	filter := make([]string, 0, len(q))
	for _, a := range q {
		addr, err := ParseAddress(a)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, Error{"bad request", err.Error()})
			return
		}
		filter = append(filter, addr)
	}
	if n := h.streams.Add(1); n > int64(h.MaxStreams) {
		h.streams.Add(-1)
		writeJSON(w, http.StatusServiceUnavailable, Error{"busy", fmt.Sprintf(
			"%d presence streams are open, the most the gateway serves: close one and retry", h.MaxStreams)})
		return
	}
	defer h.streams.Add(-1)

	rc := http.NewResponseController(w)
	// The admin server's read and write timeouts suit short requests; a
	// stream lives until the client or the gateway ends it.
	rc.SetReadDeadline(time.Time{})
	sub := h.View.Subscribe(filter, h.StreamBuf)
	defer sub.Cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(s string) bool {
		rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := fmt.Fprint(w, s); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(": xgw presence stream\n\n") {
		return
	}
	beat := time.NewTicker(h.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.Overflow:
			send(fmt.Sprintf("event: overflow\ndata: {\"reason\":\"the client read too slowly: more than %d changes were waiting; reconnect and GET the addresses you need\"}\n\n", h.StreamBuf))
			return
		case p := <-sub.C:
			b, _ := json.Marshal(p)
			if !send("event: presence\ndata: " + string(b) + "\n\n") {
				return
			}
		case <-beat.C:
			if !send(": heartbeat\n\n") {
				return
			}
		}
	}
}
