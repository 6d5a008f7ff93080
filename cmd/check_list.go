package cmd

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/xgw-gateway/xgw/checks"
)

func newCheckListCmd(s *Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the check IDs in the order they run",
		Example: `  xgw check list
  # then run a few of them
  xgw check --only dns.srv,dns.a`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tREQUIRES\tTITLE")
			for _, c := range checks.All() {
				title := c.Title
				if c.OptIn {
					title += " (opt-in: --online)"
				}
				req := strings.Join(c.Requires, ",")
				if req == "" {
					req = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", c.ID, req, title)
			}
			return tw.Flush()
		},
	}
}
