// Command xgw is a SIP/SIMPLE to XMPP federation gateway and its deployment
// checker. See README.md.
package main

import (
	"os"

	"github.com/xgw-gateway/xgw/cmd"
)

func main() { os.Exit(cmd.Main()) }
