#!/bin/sh
# xgw package, after removal: deb postrm and rpm %postun. systemd forgets the
# unit file. The xgw user, /etc/xgw and /var/lib/xgw stay (Debian policy:
# users and data outlive the package; purge removes the conffile only).
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
