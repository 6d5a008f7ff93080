#!/bin/sh
# xgw package, before removal: deb prerm (remove|upgrade|...) and rpm %preun
# ($1 = 0 on erase, 1 on upgrade). Stop the service only when it goes away;
# on upgrade postinstall restarts it.
set -e

case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac
if [ -d /run/systemd/system ]; then
	systemctl disable --now xgw.service || true
fi
