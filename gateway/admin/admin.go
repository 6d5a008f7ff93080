// Package admin is the operators' HTTP listener of `xgw serve`: /metrics
// (Prometheus), /healthz (the process answers) and /readyz (the gateway
// takes traffic), and with a token the presence API (/v1/presence/, see
// gateway/presenceapi). It binds a loopback address by default (admin.listen);
// /metrics names partners and so may require a bearer token (admin.token).
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Handler serves the admin endpoints.
type Handler struct {
	mux   *http.ServeMux
	token atomic.Pointer[string]
	ready func() error
}

// New serves metrics on /metrics and readiness from ready (nil error:
// ready) on /readyz. token "" leaves /metrics open.
func New(metrics http.Handler, ready func() error, token string) *Handler {
	h := &Handler{mux: http.NewServeMux(), ready: ready}
	h.SetToken(token)
	h.mux.Handle("GET /metrics", h.authorized(metrics))
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	h.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := h.ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	return h
}

// Presence serves api (gateway/presenceapi) under /v1/presence/. Presence
// is personal data, so unlike /metrics it always needs the token: with no
// admin.token configured it answers 403.
func (h *Handler) Presence(api http.Handler) {
	h.mux.Handle("/v1/presence/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if *h.token.Load() == "" {
			writeJSON(w, http.StatusForbidden, map[string]string{"status": "forbidden",
				"reason": "the presence API is off while admin.token is empty: presence is personal data; set admin.token and send Authorization: Bearer <admin.token>"})
			return
		}
		h.authorized(api).ServeHTTP(w, r)
	}))
}

// SetToken replaces the token (a config reload).
func (h *Handler) SetToken(token string) { h.token.Store(&token) }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// authorized requires "Authorization: Bearer <token>" when a token is set.
func (h *Handler) authorized(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := *h.token.Load()
		if want != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="xgw admin"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"status": "unauthorized",
					"reason": "expected the header Authorization: Bearer <admin.token>"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Serve answers on ln until ctx ends, then gives requests under way a
// second to finish.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10,
		// Requests end with ctx, so long ones (presence streams) do not
		// outlive the gateway.
		BaseContext: func(net.Listener) context.Context { return ctx }}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
