package cmd

import (
	"github.com/spf13/cobra"
	"github.com/xgw-gateway/xgw/gateway/config"
	"github.com/xgw-gateway/xgw/report"
)

func newDNSCmd(s *Streams, g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "dns",
		Short: "Print the DNS records the configuration needs, in zone-file syntax",
		Long: `Prints the public records (an SRV record per SIP domain and the A record of
the external FQDN) and the internal record of the gateway (for the
perimeter DNS, or as a hosts-file line for the Edge), ready to paste.`,
		Example: `  xgw dns --config /etc/xgw/xgw.yaml`,
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := config.LoadFile(g.path(s))
			if err != nil {
				return usageError(err)
			}
			_, err = s.Out.Write([]byte(config.ZoneRecords(cfg)))
			if err != nil {
				return &exitError{code: report.ExitFailed, msg: err.Error()}
			}
			return nil
		},
	}
}
