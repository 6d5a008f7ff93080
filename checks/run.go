package checks

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Select returns the catalog entries named by only (all when empty) minus
// those in skip, in catalog order. Opt-in checks are kept only when online
// is set or only names them. An unknown ID is an error listing the valid ones.
func Select(all []Check, only, skipIDs []string, online bool) ([]Check, error) {
	known := map[string]bool{}
	for _, c := range all {
		known[c.ID] = true
	}
	for _, id := range slices.Concat(only, skipIDs) {
		if !known[id] {
			ids := make([]string, len(all))
			for i, c := range all {
				ids[i] = c.ID
			}
			return nil, fmt.Errorf("unknown check ID %q; valid IDs: %s", id, strings.Join(ids, ", "))
		}
	}
	var out []Check
	for _, c := range all {
		named := slices.Contains(only, c.ID)
		switch {
		case slices.Contains(skipIDs, c.ID):
		case len(only) > 0 && !named:
		case c.OptIn && !online && !named:
			out = append(out, Check{ID: c.ID, Title: c.Title, Run: optInSkip(c.ID)})
		default:
			out = append(out, c)
		}
	}
	return out, nil
}

func optInSkip(id string) func(context.Context, *Env) []Result {
	return func(context.Context, *Env) []Result {
		return []Result{skip(id, "", "opt-in: it contacts hosts outside this network; run with --online or --only "+id)}
	}
}

// Run executes cs concurrently. Each check starts once the checks it
// Requires have finished, and is skipped when one of them failed or was
// skipped. The whole run shares ctx's deadline; results come back in the
// order of cs, and a check that panics becomes a fail instead of a crash.
func Run(ctx context.Context, env *Env, cs []Check) []Result {
	env = env.withDefaults()
	type slot struct {
		done chan struct{}
		res  []Result
	}
	slots := make(map[string]*slot, len(cs))
	for _, c := range cs {
		slots[c.ID] = &slot{done: make(chan struct{})}
	}
	for _, c := range cs {
		go func() {
			s := slots[c.ID]
			defer close(s.done)
			for _, req := range c.Requires {
				p, ok := slots[req]
				if !ok {
					continue // not selected: nothing to wait for
				}
				<-p.done
				if bad := firstBad(p.res); bad != nil {
					s.res = []Result{skip(c.ID, "", fmt.Sprintf("prerequisite %s is %s%s", req, bad.Status, targetSuffix(bad.Target)))}
					return
				}
			}
			s.res = runOne(ctx, env, c)
		}()
	}
	var out []Result
	for _, c := range cs {
		s := slots[c.ID]
		<-s.done
		out = append(out, s.res...)
	}
	return out
}

func targetSuffix(t string) string {
	if t == "" {
		return ""
	}
	return " for " + t
}

func firstBad(rs []Result) *Result {
	for i := range rs {
		if rs[i].Status == Fail || rs[i].Status == Skip {
			return &rs[i]
		}
	}
	return nil
}

func runOne(ctx context.Context, env *Env, c Check) (res []Result) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			res = []Result{fail(c.ID, "", fmt.Sprintf("the probe crashed: %v", p), "a result", "report this as a bug in xgw")}
		}
		d := time.Since(start)
		for i := range res {
			if res[i].ID == "" {
				res[i].ID = c.ID
			}
			if res[i].Duration == 0 {
				res[i].Duration = d
			}
		}
	}()
	res = c.Run(ctx, env)
	if len(res) == 0 {
		res = []Result{fail(c.ID, "", "the probe returned no result", "a result", "report this as a bug in xgw")}
	}
	return res
}
