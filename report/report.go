// Package report renders check results as text (for people), JSON (a
// versioned contract for scripts) or JUnit XML (for CI dashboards), and owns
// the exit-code policy.
package report

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/xgw-gateway/xgw/checks"
)

// SchemaVersion is the version of the JSON document. Adding fields keeps it;
// renaming or removing one bumps it.
const SchemaVersion = 1

// Exit codes of `xgw check` (and of `xgw serve` refusing to start).
const (
	ExitOK     = 0 // no check failed
	ExitFailed = 1 // at least one check failed (or warned, with --strict)
	ExitUsage  = 2 // bad flags or a bad config file; nothing was probed
)

// Report is one run of the suite.
type Report struct {
	Results []checks.Result
	Strict  bool // warnings count as failures
}

// Counts is the number of results per status.
type Counts struct {
	Pass int `json:"pass"`
	Fail int `json:"fail"`
	Warn int `json:"warn"`
	Skip int `json:"skip"`
}

// Counts tallies the results.
func (r *Report) Counts() Counts {
	var c Counts
	for _, res := range r.Results {
		switch res.Status {
		case checks.Pass:
			c.Pass++
		case checks.Fail:
			c.Fail++
		case checks.Warn:
			c.Warn++
		case checks.Skip:
			c.Skip++
		}
	}
	return c
}

// ExitCode is ExitFailed when any check failed (or warned under Strict).
func (r *Report) ExitCode() int {
	c := r.Counts()
	if c.Fail > 0 || (r.Strict && c.Warn > 0) {
		return ExitFailed
	}
	return ExitOK
}

// Renderer writes a report in one format.
type Renderer interface {
	Render(w io.Writer, r *Report) error
}

// Options tune the renderers.
type Options struct {
	Color bool // text only
}

// Formats lists the names New accepts.
var Formats = []string{"text", "json", "junit"}

// New returns the renderer for format.
func New(format string, o Options) (Renderer, error) {
	switch format {
	case "text":
		return newText(o.Color), nil
	case "json":
		return jsonRenderer{}, nil
	case "junit":
		return junitRenderer{}, nil
	}
	return nil, fmt.Errorf("unknown output format %q; valid formats: %s", format, strings.Join(Formats, ", "))
}

// failing reports whether res counts against the run.
func (r *Report) failing(res checks.Result) bool {
	return res.Status == checks.Fail || (r.Strict && res.Status == checks.Warn)
}

// IDs lists the distinct check IDs in result order.
func (r *Report) IDs() []string {
	var ids []string
	for _, res := range r.Results {
		if !slices.Contains(ids, res.ID) {
			ids = append(ids, res.ID)
		}
	}
	return ids
}
