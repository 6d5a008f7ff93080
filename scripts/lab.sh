#!/usr/bin/env bash
# The loopback lab (README "Two commands"): builds xgw and brings up, in a
# network namespace of its own, a DNS server, Prosody (xmpp.test), Kamailio
# as the Edge with a SIP user agent behind it (sipp), runs `xgw check` (all
# green), starts `xgw serve`, sends one message each way with non-ASCII
# text and relays a presence subscription and status change, prints what
# each side received and tears everything down.
# The lab is lab/lab_test.go; this runs it verbosely through scripts/test.sh,
# which installs the peers and creates the namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/test.sh -v -run '^TestLab$' ./lab/
