package sip

import (
	"context"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// EdgeHealth is what the OPTIONS keepalive last learned about the Edge.
type EdgeHealth struct {
	// Up: the Edge answered the last OPTIONS (any final status counts: it
	// is alive and routing, RFC 3261 §11).
	Up bool
	// Checked is when the last probe ended, Since when Up last changed;
	// both are zero before the first probe.
	Checked, Since time.Time
	// Status is the last final status, Err why the last probe failed.
	Status int
	Err    error
}

type health struct {
	mu sync.Mutex
	h  EdgeHealth
}

// EdgeHealth reports the Edge's state as the keepalive last saw it.
func (e *Endpoint) EdgeHealth() EdgeHealth {
	e.health.mu.Lock()
	defer e.health.mu.Unlock()
	return e.health.h
}

// PingEdge sends one OPTIONS to the Edge and records the outcome.
func (e *Endpoint) PingEdge(ctx context.Context) EdgeHealth {
	ctx, cancel := context.WithTimeout(ctx, min(e.cfg.KeepaliveInterval, e.cfg.RequestTimeout))
	defer cancel()
	uri := sip.Uri{Scheme: "sip", Host: e.cfg.Edge.Host, Port: e.cfg.Edge.Port}
	req := sip.NewRequest(sip.OPTIONS, uri)
	req.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	res, err := e.do(ctx, req, e.edgeAddr)

	e.health.mu.Lock()
	defer e.health.mu.Unlock()
	h := &e.health.h
	was, first := h.Up, h.Checked.IsZero()
	h.Checked = time.Now()
	h.Err = err
	h.Status = 0
	if res != nil {
		h.Status = res.StatusCode
	}
	h.Up = err == nil
	if h.Up != was || first {
		h.Since = h.Checked
		if h.Up {
			e.log.Info("sip: edge up", "edge", e.edgeAddr, "status", h.Status)
		} else {
			e.log.Warn("sip: edge down", "edge", e.edgeAddr, "err", err)
		}
	}
	return *h
}

// keepalive pings the Edge every KeepaliveInterval until ctx ends.
func (e *Endpoint) keepalive(ctx context.Context) {
	t := time.NewTicker(e.cfg.KeepaliveInterval)
	defer t.Stop()
	for {
		e.PingEdge(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
