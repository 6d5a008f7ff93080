package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/xgw-gateway/xgw/gateway/config"
)

func TestTraceDefaults(t *testing.T) {
	c, err := config.LoadFile(adminFile(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Trace{File: "/var/lib/xgw/trace.jsonl", MaxSizeMB: 100, MaxFiles: 5}
	if c.Trace.File != want.File || c.Trace.MaxSizeMB != want.MaxSizeMB || c.Trace.MaxFiles != want.MaxFiles ||
		len(c.Trace.Protocols) != 0 || c.Trace.Bodies {
		t.Errorf("trace defaults = %+v, want %+v (off: no protocols)", c.Trace, want)
	}
}

func TestTraceValid(t *testing.T) {
	tests := []struct {
		name, extra string
		want        config.Trace
	}{
		{"all keys", "trace: {file: /var/lib/xgw/t.jsonl, protocols: [sip, xmpp, dns], bodies: true, max_size_mb: 10, max_files: 2}\n",
			config.Trace{File: "/var/lib/xgw/t.jsonl", Protocols: []string{"sip", "xmpp", "dns"}, Bodies: true, MaxSizeMB: 10, MaxFiles: 2}},
		{"protocols only", "trace: {protocols: [XMPP]}\n",
			config.Trace{File: "/var/lib/xgw/trace.jsonl", Protocols: []string{"XMPP"}, MaxSizeMB: 100, MaxFiles: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.LoadFile(adminFile(t, tt.extra))
			if err != nil {
				t.Fatal(err)
			}
			got := c.Trace
			if got.File != tt.want.File || strings.Join(got.Protocols, ",") != strings.Join(tt.want.Protocols, ",") ||
				got.Bodies != tt.want.Bodies || got.MaxSizeMB != tt.want.MaxSizeMB || got.MaxFiles != tt.want.MaxFiles {
				t.Errorf("trace = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTraceInvalid(t *testing.T) {
	tests := []struct{ name, extra, want string }{
		{"unknown protocol", "trace: {protocols: [sip, http]}\n", `trace.protocols[1]: found "http", expected sip, xmpp or dns`},
		{"duplicate protocol", "trace: {protocols: [sip, SIP]}\n", `trace.protocols[1]: found "SIP" a second time, expected each protocol once`},
		{"negative size", "trace: {max_size_mb: -1}\n", `trace.max_size_mb: found -1, expected 1 to 102400 (MB per file)`},
		{"too many files", "trace: {max_files: 5000}\n", `trace.max_files: found 5000, expected 1 to 1000`},
		{"directory as file", "trace: {file: /var/lib/xgw/}\n", `trace.file: found "/var/lib/xgw/", expected a file name, not a directory`},
		{"unknown key", "trace: {bodys: true}\n", `trace.bodys: found unknown key "bodys", expected one of file, protocols, bodies, max_size_mb, max_files`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.LoadFile(adminFile(t, tt.extra))
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v, want config.Errors", err)
			}
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.want) || errs[0].Fix == "" {
				t.Errorf("errors = %v\nwant one containing %q, with a fix", err, tt.want)
			}
		})
	}
}
