#!/bin/sh
# Live SMTPS state of mail1, read only: one `field=value` line each. Rendered by smtps-iredmail: every value
# below was quoted when rendered.
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

if postfix status >/dev/null 2>&1; then echo "postfix=running"; else echo "postfix=stopped"; fi
for key in 465 smtps submissions; do
    printf 'master.%s=%s\n' "$key" "$(postconf -M "$key/inet" 2>/dev/null | tr '\t\n' '  ' | tr -s ' ' | sed 's/^ //; s/ $//')"
done


FILE=/etc/firewalld/services/smtps.xml
if [ -f "$FILE" ]; then
    printf 'service.file=%s\n' "$(base64 -w0 < "$FILE")"
else
    echo "service.file="
fi


ZONE=iredmail
SERVICE=smtps
PORT=465/tcp
# yes or no: does the `FIELD:` line of a --list-all listing name WORD? (one listing per layer: each firewall-cmd call
# costs about 0.2 s)
yn() { if printf '%s\n' "$1" | sed -n "s/^  $2: //p" | tr ' ' '\n' | grep -qx "$3"; then echo yes; else echo no; fi; }
if PERM=$(firewall-cmd --permanent --zone="$ZONE" --list-all 2>/dev/null); then
    RUN=$(firewall-cmd --zone="$ZONE" --list-all 2>/dev/null) || RUN=""
    echo "firewalld=running"
    echo "zone.permanent.service=$(yn "$PERM" services "$SERVICE")"
    echo "zone.permanent.port=$(yn "$PERM" ports "$PORT")"
    echo "zone.runtime.service=$(yn "$RUN" services "$SERVICE")"
    echo "zone.runtime.port=$(yn "$RUN" ports "$PORT")"
elif firewall-cmd --state >/dev/null 2>&1; then
    echo "firewalld=running"
    echo "zone=missing"
else
    echo "firewalld=stopped"
fi

