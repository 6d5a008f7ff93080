package report

import (
	"fmt"
	"io"

	"github.com/fatih/color"
	"github.com/xgw-gateway/xgw/checks"
)

// textRenderer prints one line per result, then every fix, then a summary
// (kube-bench's order: what is wrong, what to do, how bad).
type textRenderer struct {
	status map[checks.Status]*color.Color
	bold   *color.Color
	faint  *color.Color
}

// newText builds its own colours and switches them on or off explicitly, so
// it never depends on (or races on) the global color.NoColor.
func newText(useColor bool) *textRenderer {
	t := &textRenderer{
		status: map[checks.Status]*color.Color{
			checks.Pass: color.New(color.FgGreen),
			checks.Warn: color.New(color.FgYellow),
			checks.Fail: color.New(color.FgRed, color.Bold),
			checks.Skip: color.New(color.FgCyan),
		},
		bold:  color.New(color.Bold),
		faint: color.New(color.Faint),
	}
	for _, c := range append([]*color.Color{t.bold, t.faint}, t.status[checks.Pass], t.status[checks.Warn], t.status[checks.Fail], t.status[checks.Skip]) {
		if useColor {
			c.EnableColor()
		} else {
			c.DisableColor()
		}
	}
	return t
}

var statusLabel = map[checks.Status]string{
	checks.Pass: "PASS", checks.Warn: "WARN", checks.Fail: "FAIL", checks.Skip: "SKIP",
}

func (t *textRenderer) Render(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	for _, res := range r.Results {
		target := ""
		if res.Target != "" {
			target = " " + t.faint.Sprint("["+res.Target+"]")
		}
		ew.printf("%s %s%s: %s\n", t.status[res.Status].Sprintf("%-4s", statusLabel[res.Status]), t.bold.Sprint(res.ID), target, res.Found)
	}
	first := true
	for _, res := range r.Results {
		if res.Status != checks.Fail && res.Status != checks.Warn {
			continue
		}
		if first {
			ew.printf("\n%s\n", t.bold.Sprint("How to fix"))
			first = false
		}
		name := res.ID
		if res.Target != "" {
			name += " [" + res.Target + "]"
		}
		ew.printf("%s %s\n", t.status[res.Status].Sprint(statusLabel[res.Status]), name)
		if res.Expected != "" {
			ew.printf("    expected: %s\n", res.Expected)
		}
		if res.Fix != "" {
			ew.printf("    fix:      %s\n", res.Fix)
		}
	}
	c := r.Counts()
	worst := checks.Pass
	switch {
	case c.Fail > 0:
		worst = checks.Fail
	case c.Warn > 0:
		worst = checks.Warn
	}
	ew.printf("\n%s\n", t.status[worst].Sprintf("%d passed, %d failed, %d warnings, %d skipped", c.Pass, c.Fail, c.Warn, c.Skip))
	return ew.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, a ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, a...)
	}
}
