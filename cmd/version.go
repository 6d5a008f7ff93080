package cmd

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// Set by the linker (-X) in release builds; see .goreleaser.yaml.
var (
	version = "dev"
	commit  = "none"
	date    = "unknown"
)

func newVersionCmd(s *Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Example: `  xgw version
  # xgw 1.2.3 (commit 1a2b3c4, built 2026-11-25T12:00:00Z, go1.26.8 linux/amd64)`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(s.Out, "xgw %s (commit %s, built %s, %s %s/%s)\n", version, commit, date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
