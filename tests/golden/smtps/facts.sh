#!/bin/sh
# The SMTPS facts of mail1, read only: one `field=value` line each (smtps/facts.py parses them). Rendered by
# smtps-iredmail: every value below was quoted when rendered.
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

if postfix status >/dev/null 2>&1; then echo "postfix=running"; else echo "postfix=stopped"; fi
for key in 465 smtps submissions; do
    printf 'master.%s=%s\n' "$key" "$(postconf -M "$key/inet" 2>/dev/null | tr '\t\n' '  ' | tr -s ' ' | sed 's/^ //; s/ $//')"
done


FILE=/etc/firewalld/services/smtps.xml
if [ -f "$FILE" ]; then
    printf 'service.file=%s\n' "$(base64 -w0 < "$FILE")"
    printf 'service.mode=%s\n' "$(stat -c %a "$FILE")"
else
    echo "service.file=-"
fi


# firewalld's own Python: the interpreter on firewall-cmd's first line (a distribution's platform-python, where
# python3 may not even be installed) has firewalld's library. A firewall-cmd that is a wrapper (its first line is no
# Python) leaves python3 from PATH.
FWPY=$(sed -n '1s/^#! *\([^ ]*\).*/\1/p' "$(command -v firewall-cmd 2>/dev/null || echo /dev/null)" 2>/dev/null || true)
case "${FWPY##*/}" in *python*) [ -x "$FWPY" ] || FWPY=python3 ;; *) FWPY=python3 ;; esac

zone_probe() {  # zone_probe ZONE SERVICE PORT: the zone's facts, one field=value per line
    "$FWPY" - "$@" <<'SMTPS_ZONE_PROBE'
<smtps/zone_probe.py, as it is>
SMTPS_ZONE_PROBE
}


zone_probe iredmail smtps 465/tcp


