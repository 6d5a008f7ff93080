package cmd

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// globalOptions are the persistent flags every command shares.
type globalOptions struct {
	configPath string
	noColor    bool
}

// NewRootCmd builds the command tree.
func NewRootCmd(s *Streams) *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "xgw",
		Short: "SIP/SIMPLE to XMPP federation gateway and deployment checker",
		Long: `xgw connects a SIP/SIMPLE IM domain (Skype for Business/Lync Edge, Kamailio,
OpenSIPS, Asterisk, FreeSWITCH) to federated XMPP domains: IM, presence and
typing in both directions.

  xgw check   probes a deployment (DNS, certificates, firewall, Edge, peers)
  xgw serve   runs the same checks, then operates the gateway
  xgw dns     prints the DNS records the configuration needs
  xgw cert    makes the gateway's key and certificate request
  xgw trace   prints the protocol trace of xgw serve --trace`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.ErrOut)
	g.addFlags(root.PersistentFlags())
	root.AddCommand(
		newCheckCmd(s, g, nil),
		newServeCmd(s, g, nil),
		newDNSCmd(s, g),
		newCertCmd(s, g, nil),
		newTraceCmd(s, g, nil),
		newVersionCmd(s),
	)
	return root
}

func (g *globalOptions) addFlags(f *pflag.FlagSet) {
	f.StringVarP(&g.configPath, "config", "c", "", "config file (default $XGW_CONFIG, else ./xgw.yaml)")
	f.BoolVar(&g.noColor, "no-color", false, "never colour the output (also NO_COLOR=1)")
}

// path returns the config file to read: --config, then $XGW_CONFIG, then ./xgw.yaml.
func (g *globalOptions) path(s *Streams) string {
	if g.configPath != "" {
		return g.configPath
	}
	if p := s.Getenv("XGW_CONFIG"); p != "" {
		return p
	}
	return "xgw.yaml"
}
