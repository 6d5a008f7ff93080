package report

import (
	"encoding/json"
	"io"

	"github.com/xgw-gateway/xgw/checks"
)

// jsonDoc is the contract documented in README.md ("JSON output").
type jsonDoc struct {
	SchemaVersion int          `json:"schema_version"`
	Results       []jsonResult `json:"results"`
	Counts        Counts       `json:"counts"`
}

type jsonResult struct {
	ID         string        `json:"id"`
	Target     string        `json:"target"`
	Status     checks.Status `json:"status"`
	Found      string        `json:"found"`
	Expected   string        `json:"expected"`
	Fix        string        `json:"fix"`
	DurationMS int64         `json:"duration_ms"`
}

type jsonRenderer struct{}

func (jsonRenderer) Render(w io.Writer, r *Report) error {
	doc := jsonDoc{SchemaVersion: SchemaVersion, Results: make([]jsonResult, 0, len(r.Results)), Counts: r.Counts()}
	for _, res := range r.Results {
		doc.Results = append(doc.Results, jsonResult{
			ID: res.ID, Target: res.Target, Status: res.Status,
			Found: res.Found, Expected: res.Expected, Fix: res.Fix,
			DurationMS: res.Duration.Milliseconds(),
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
