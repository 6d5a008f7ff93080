package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/xgw-gateway/xgw/checks"
)

// JUnit XML as read by Jenkins, GitLab and GitHub test reporters: one
// testsuite per check ID, one testcase per target.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

type junitRenderer struct{}

func seconds(ms float64) string { return fmt.Sprintf("%.3f", ms/1000) }

func (junitRenderer) Render(w io.Writer, r *Report) error {
	doc := junitSuites{Name: "xgw check"}
	var totalMS float64
	for _, id := range r.IDs() {
		s := junitSuite{Name: id}
		var suiteMS float64
		for _, res := range r.Results {
			if res.ID != id {
				continue
			}
			ms := float64(res.Duration.Microseconds()) / 1000
			suiteMS += ms
			name := res.Target
			if name == "" {
				name = id
			}
			tc := junitCase{Name: name, Classname: "xgw." + id, Time: seconds(ms)}
			detail := detailText(res)
			switch {
			case r.failing(res):
				tc.Failure = &junitMessage{Message: res.Found, Type: res.Status.String(), Text: detail}
				s.Failures++
			case res.Status == checks.Skip:
				tc.Skipped = &junitMessage{Message: res.Found}
				s.Skipped++
			default:
				tc.SystemOut = detail
			}
			s.Cases = append(s.Cases, tc)
			s.Tests++
		}
		s.Time = seconds(suiteMS)
		totalMS += suiteMS
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Skipped += s.Skipped
		doc.Suites = append(doc.Suites, s)
	}
	doc.Time = seconds(totalMS)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func detailText(res checks.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "status: %s\nfound: %s\n", res.Status, res.Found)
	if res.Expected != "" {
		fmt.Fprintf(&b, "expected: %s\n", res.Expected)
	}
	if res.Fix != "" {
		fmt.Fprintf(&b, "fix: %s\n", res.Fix)
	}
	return b.String()
}
