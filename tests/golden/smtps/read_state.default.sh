#!/bin/sh
# Live SMTPS state of mail1, read only: one `field=value` line each. Rendered by smtps-iredmail: every value
# below was quoted when rendered.
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ZONE=iredmail
SERVICE=smtps
PORT=465/tcp
FILE=/etc/firewalld/services/smtps.xml
yn() { if "$@" >/dev/null 2>&1; then echo yes; else echo no; fi; }

if postfix status >/dev/null 2>&1; then echo "postfix=running"; else echo "postfix=stopped"; fi
for key in 465 smtps submissions; do
    printf 'master.%s=%s\n' "$key" "$(postconf -M "$key/inet" 2>/dev/null | tr '\t' ' ' | tr -s ' ' | sed 's/ $//')"
done
if [ -f "$FILE" ]; then
    printf 'service.file=%s\n' "$(base64 -w0 < "$FILE")"
else
    echo "service.file="
fi
if firewall-cmd --state >/dev/null 2>&1; then
    echo "firewalld=running"
    echo "zone.permanent.service=$(yn firewall-cmd --permanent --zone="$ZONE" --query-service="$SERVICE")"
    echo "zone.permanent.port=$(yn firewall-cmd --permanent --zone="$ZONE" --query-port="$PORT")"
    echo "zone.runtime.service=$(yn firewall-cmd --zone="$ZONE" --query-service="$SERVICE")"
    echo "zone.runtime.port=$(yn firewall-cmd --zone="$ZONE" --query-port="$PORT")"
else
    echo "firewalld=stopped"
fi
