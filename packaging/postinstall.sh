#!/bin/sh
# xgw package, after unpacking: deb postinst (configure) and rpm %post, on
# install and on upgrade alike, so every step is idempotent.
set -e

# The service's own system user: no login shell, home is its state folder.
if ! getent passwd xgw >/dev/null; then
	useradd --system --user-group --home-dir /var/lib/xgw --no-create-home \
		--shell /usr/sbin/nologin --comment "xgw gateway" xgw
fi
install -d -o xgw -g xgw -m 0750 /var/lib/xgw

# root owns the config; the service reads it through its group (the file may
# hold xmpp.dialback_secret, and the key lives next to it).
chgrp xgw /etc/xgw
if [ -e /etc/xgw/xgw.yaml ]; then
	chgrp xgw /etc/xgw/xgw.yaml
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	# An upgrade restarts a running gateway on the new binary; a first
	# install starts nothing: the example config must be edited first.
	systemctl try-restart xgw.service
	if ! systemctl is-enabled --quiet xgw.service; then
		cat <<'MSG'
xgw installed. Next:
  1. edit /etc/xgw/xgw.yaml (SIP domains, FQDNs, addresses)
  2. xgw cert request --config /etc/xgw/xgw.yaml   (key and CSR; see README "Certificates")
     then: chgrp xgw /etc/xgw/key.pem && chmod 0640 /etc/xgw/key.pem
  3. xgw check --config /etc/xgw/xgw.yaml
  4. systemctl enable --now xgw
MSG
	fi
fi
