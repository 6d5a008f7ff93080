package sip

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Store keeps subscription dialogs across restarts. The endpoint writes a
// dialog before answering 2xx to the request that created or refreshed it.
type Store interface {
	Put(ctx context.Context, s Subscription) error
	Delete(ctx context.Context, id DialogID) error
	All(ctx context.Context) ([]Subscription, error)
}

// MemoryStore is a Store that forgets everything on exit, for labs and
// for gateways that accept losing subscriptions on restart.
type MemoryStore struct {
	mu sync.Mutex
	m  map[DialogID]Subscription
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{m: map[DialogID]Subscription{}} }

// Put implements Store.
func (s *MemoryStore) Put(_ context.Context, sub Subscription) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[sub.ID] = sub.clone()
	return nil
}

// Delete implements Store.
func (s *MemoryStore) Delete(_ context.Context, id DialogID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
	return nil
}

// All implements Store.
func (s *MemoryStore) All(context.Context) ([]Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Subscription, 0, len(s.m))
	for _, v := range s.m {
		out = append(out, v.clone())
	}
	return out, nil
}

// cseqGap is added to a reloaded dialog's local CSeq: requests sent after
// the last write must not reuse a number (RFC 3261 §12.2.1.1).
const cseqGap = 1000

// resume reloads the Store: dialogs that expired while we were down end
// (HandleEnded), the others get their timers back.
func (e *Endpoint) resume(ctx context.Context) error {
	subs, err := e.cfg.Store.All(ctx)
	if err != nil {
		return fmt.Errorf("sip: reload subscriptions: %w", err)
	}
	now := time.Now()
	for _, s := range subs {
		if _, ok := e.dialogs.get(s.ID); ok {
			continue
		}
		if !s.Expires.After(now) {
			if err := e.cfg.Store.Delete(ctx, s.ID); err != nil {
				return fmt.Errorf("sip: drop expired subscription %s: %w", s.ID, err)
			}
			e.logDialog("sip: dialog terminated", s, "reason", "expired while the gateway was down")
			e.ended(s, "expired while the gateway was down")
			continue
		}
		s.LocalCSeq += cseqGap
		if err := e.cfg.Store.Put(ctx, s); err != nil {
			return fmt.Errorf("sip: reload subscription %s: %w", s.ID, err)
		}
		d := newDialog(s)
		d.mu.Lock()
		switch s.Role {
		case RoleNotifier:
			e.armLocked(d, time.Until(s.Expires), func() { e.expireNotifier(d) })
		default:
			e.armLocked(d, refreshDelay(time.Until(s.Expires)), func() { e.refresh(d) })
		}
		d.mu.Unlock()
		e.dialogs.put(d)
		e.logDialog("sip: dialog resumed", s)
	}
	return nil
}
