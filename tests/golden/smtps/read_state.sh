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


# Both layers of the zone in one process, with firewalld's own client library (what firewall-cmd uses): one
# firewall-cmd run costs about 0.3 s of a host's CPU, and this read runs on every host for every drift check.
python3 - iredmail smtps 465/tcp <<'SMTPS_READ_ZONE'
import sys
zone, service, port = sys.argv[1:4]
try:
    from firewall.client import FirewallClient
    fw = FirewallClient()
    running = fw.connected
except Exception:  # no firewalld, or no D-Bus at all: either way, not running
    running = False
if not running:
    print("firewalld=stopped")
    sys.exit(0)
print("firewalld=running")
try:
    layers = {"permanent": fw.config().getZoneByName(zone).getSettings(), "runtime": fw.getZoneSettings(zone)}
except Exception:
    print("zone=missing")
    sys.exit(0)
for layer, settings in layers.items():
    ports = {f"{number}/{protocol}" for number, protocol in settings.getPorts()}
    print(f"zone.{layer}.service={'yes' if service in settings.getServices() else 'no'}")
    print(f"zone.{layer}.port={'yes' if port in ports else 'no'}")
SMTPS_READ_ZONE

