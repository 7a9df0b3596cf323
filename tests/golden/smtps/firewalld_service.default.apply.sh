#!/bin/sh
# firewalld service on mail1: apply. Rendered by smtps-iredmail: every value below was quoted when rendered.
set -eu
umask 022
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HOST=mail1
# What the host looked like before the first change, and after the last one: destroy needs both. One folder per
# resource under it, made whole as NAME.new and renamed into place, so it is always complete or absent.
STATE=/var/lib/smtps-iredmail
say() { printf 'smtps: %s: %s\n' "$HOST" "$*"; }
fail() { printf 'smtps: %s: %s\n' "$HOST" "$*" >&2; exit 1; }
# Put a copy of $1 at $2 in one step: copy beside the target, then rename over it. Nothing is ever half-written,
# and a copy that fails (a full disk) takes its partial file with it.
put() { cp -p "$1" "$2.smtps-tmp" && mv -f "$2.smtps-tmp" "$2" || { rm -f "$2.smtps-tmp"; return 1; }; }
# Put $1 back at $2 only if they differ: an undo that has nothing to put back writes nothing (and so cannot fail).
put_back() { cmp -s "$1" "$2" || put "$1" "$2"; }
# What a run interrupted by a kill may have left: work copies beside the files, unfinished state folders.
tidy() {  # tidy FILE... : remove FILE.smtps-tmp for each
    for f in "$@"; do rm -f "$f.smtps-tmp"; done
    [ ! -d "$STATE" ] || rm -rf "$STATE"/*.new "$STATE"/*.gone
}
# The state folder of a resource: made (with its first snapshot) only on the first change, so that a host never
# touched stays exactly as it was; taken away whole, by one rename, with the last undo.
begin_state() {  # begin_state DIR: an empty DIR.new to fill; commit_state DIR puts it in place
    mkdir -p "$STATE" && chmod 700 "$STATE"
    rm -rf "$1.new" && mkdir "$1.new"
}
commit_state() { mv "$1.new" "$1"; }
drop_state() {  # drop_state DIR: gone in one rename; the state root goes with the last resource's
    mv "$1" "$1.gone" && rm -rf "$1.gone"
    rmdir "$STATE" 2>/dev/null || true
}
# On any failure after the first change (a failed command under `set -e`, `fail`, or a signal), the EXIT trap runs
# the undo named by `on_failure`, so the host's files end as they were before this run.
UNDO=""
on_failure() { UNDO="$1"; }
finish() {
    rc=$?
    trap - EXIT
    if [ "$rc" -ne 0 ] && [ -n "$UNDO" ]; then
        if "$UNDO" >/dev/null 2>&1; then
            printf 'smtps: %s: firewalld service: failed; what this run changed is undone\n' "$HOST" >&2
        else
            printf 'smtps: %s: firewalld service: failed, and undoing it failed too: check the host\n' "$HOST" >&2
        fi
    fi
    exit "$rc"
}
trap finish EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# Lockout guard. A firewalld reload makes the permanent configuration the running one: where SSH is allowed only at
# runtime, a reload would cut this very connection. Before any change that ends in a reload, the zone that carries
# this SSH connection must allow its port in the permanent configuration.
ssh_survives_reload() {
    python3 - <<'SMTPS_LOCKOUT_GUARD'
import os
import subprocess
import sys

conn = os.environ.get("SSH_CONNECTION", "").split()
if len(conn) != 4:
    sys.exit(0)  # not run over SSH: no connection to lose
client, _, server, port = conn
from firewall.client import FirewallClient

fw = FirewallClient()
if not fw.connected:
    sys.exit(0)  # firewalld not running: the scripts refuse on their own
iface = ""
for line in subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True).stdout.splitlines():
    fields = line.split()
    if len(fields) > 3 and fields[3].split("/")[0] == server:
        iface = fields[1]
zone = fw.getZoneOfSource(client) or (iface and fw.getZoneOfInterface(iface)) or fw.getDefaultZone()
settings = fw.config().getZoneByName(zone).getSettings()
wanted = (port, "tcp")
if settings.getTarget() == "ACCEPT" or wanted in [tuple(p) for p in settings.getPorts()]:
    sys.exit(0)
for name in settings.getServices():
    ports = [tuple(p) for p in fw.config().getServiceByName(name).getSettings().getPorts()]
    if wanted in ports:
        sys.exit(0)
print(f"a firewalld reload would cut SSH: this connection (port {port}/tcp) comes in through zone {zone}, whose "
      f"permanent configuration does not allow it (allowed at runtime only). Make it permanent first "
      f"(firewall-cmd --permanent --zone={zone} --add-service=ssh); nothing was changed")
sys.exit(1)
SMTPS_LOCKOUT_GUARD
}
guard_reload() { why=$(ssh_survives_reload 2>&1) || fail "$why"; }


NAME=smtps
FILE="/etc/firewalld/services/$NAME.xml"
S="$STATE/service-$NAME"
tidy "$FILE"
firewall-cmd --state >/dev/null 2>&1 || fail "firewalld is not running: start it (SMTPS needs the runtime firewall too)"
# The file this run started from goes back (or goes, if there was none), firewalld re-reads it if it was told to,
# and a state folder this run made goes too.
undo() {
    if [ -e "$S.before" ]; then put_back "$S.before" "$FILE"; rm -f "$S.before"; else rm -f "$FILE"; fi
    if [ "$RELOADED" = yes ]; then firewall-cmd --reload || true; fi  # best effort: the files are what must be
    if [ "$FIRST" = yes ] && [ -d "$S" ]; then drop_state "$S"; fi
    rm -rf "$S.new"
}
RELOADED=no
FIRST=no
# A new or changed service file reaches the running firewall only by a reload. --reload keeps established
# connections; --complete-reload would drop them.
check_and_reload() {
    check=$(firewall-cmd --check-config 2>&1) || fail "firewall-cmd --check-config failed: $check"
    RELOADED=yes
    firewall-cmd --reload >/dev/null || fail "firewall-cmd --reload failed"
}

XML=$(cat <<'SMTPS_SERVICE_XML'
<?xml version="1.0" encoding="utf-8"?>
<service>
  <short>Enable SMTPS</short>
  <description>Enable SMTPS.</description>
  <port protocol="tcp" port="465"/>
</service>
SMTPS_SERVICE_XML
)
# Written earlier and loaded by a reload that completed (`applied` is written last): nothing to do.
if [ -f "$FILE" ] && printf '%s\n' "$XML" | cmp -s - "$FILE" && [ -e "$S/applied" ] && cmp -s "$FILE" "$S/applied"
then
    say "firewalld service $NAME: up to date"
    exit 0
fi
guard_reload
on_failure undo
if [ ! -d "$S" ]; then
    # The first change: keep the service file as found (or that there was none), for destroy.
    FIRST=yes
    begin_state "$S"
    if [ -e "$FILE" ]; then cp -p "$FILE" "$S.new/orig"; else : > "$S.new/absent"; fi
    commit_state "$S"
fi
rm -f "$S.before"
[ ! -e "$FILE" ] || put "$FILE" "$S.before"
printf '%s\n' "$XML" > "$FILE.smtps-tmp"
chmod 644 "$FILE.smtps-tmp"
mv -f "$FILE.smtps-tmp" "$FILE"
check_and_reload
put "$FILE" "$S/applied"
on_failure ""
rm -f "$S.before"
say "firewalld service $NAME: written; firewalld reloaded"

