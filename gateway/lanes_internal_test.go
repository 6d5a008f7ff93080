package gateway

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestLanes(t *testing.T) {
	t.Run("one key runs in order, keys run side by side", func(t *testing.T) {
		ls := newLanes(16)
		release := make(chan struct{})
		var mu sync.Mutex
		var order []int
		var wg sync.WaitGroup
		wg.Add(4)
		ls.submit(context.Background(), "slow", func() { <-release; wg.Done() })
		for i := range 3 {
			ls.submit(context.Background(), "fast", func() {
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				wg.Done()
			})
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			n := len(order)
			mu.Unlock()
			if n == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the fast lane waited for the slow one")
			}
			time.Sleep(time.Millisecond)
		}
		close(release)
		wg.Wait()
		if order[0] != 0 || order[1] != 1 || order[2] != 2 {
			t.Errorf("order %v, want [0 1 2]", order)
		}
		ls.mu.Lock()
		defer ls.mu.Unlock()
		if len(ls.m) != 0 {
			t.Errorf("%d lanes left after their queues emptied", len(ls.m))
		}
	})
	t.Run("full: submit waits, then gives up with its context", func(t *testing.T) {
		ls := newLanes(1)
		release := make(chan struct{})
		done := make(chan struct{})
		ls.submit(context.Background(), "a", func() { <-release; close(done) })
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		ran := false
		if err := ls.submit(ctx, "b", func() { ran = true }); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("submit on a full set = %v, want the context's deadline", err)
		}
		close(release)
		<-done
		if ran {
			t.Error("a job refused by submit ran")
		}
	})
}
