#!/usr/bin/env bash
# Installs the third-party peers xgw's tests and lab talk to, from Debian's
# packages, without letting apt start them as system services.
set -euo pipefail
# ca-certificates: go mod download needs it on a bare image; systemd gives
# systemd-analyze for the packaging test.
pkgs=(ca-certificates prosody ejabberd lua-sec lua-expat lua-filesystem kamailio kamailio-tls-modules sip-tester nftables iproute2 openssl systemd)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
# policy-rc.d exit 101: postinst scripts must not start prosody/kamailio/ejabberd.
had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
if [ $had_policy = 0 ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT # also when apt fails
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: lua-unbound (a prosody Recommends) breaks *.test names.
apt-get install -y -qq --no-install-recommends "${missing[@]}"
