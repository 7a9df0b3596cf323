#!/bin/sh
# zone membership on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when rendered.
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
            printf 'smtps: %s: zone membership: failed; what this run changed is undone\n' "$HOST" >&2
        else
            printf 'smtps: %s: zone membership: failed, and undoing it failed too: check the host\n' "$HOST" >&2
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


ZONE=iredmail
SERVICE=smtps
POLICY=keep
PORT=465/tcp
ZFILE="/etc/firewalld/zones/$ZONE.xml"
S="$STATE/zone-$ZONE"
tidy "$ZFILE" "$ZFILE.old"
# Each firewall-cmd call costs about 0.2 s (it is a Python program): read each layer of the zone once.
read_zone() {  # read_zone [--permanent]: the zone's `--list-all`, or a clear failure
    local out rc=0
    out=$(firewall-cmd "$@" --zone="$ZONE" --list-all 2>&1) || rc=$?
    case $rc in
        0) printf '%s\n' "$out" ;;
        252) fail "firewalld is not running: start it (SMTPS needs the runtime firewall too)" ;;
        *) fail "firewalld zone $ZONE: $out" ;;
    esac
}
# lists LISTING FIELD WORD: does the `FIELD:` line of a --list-all listing name WORD?
lists() { printf '%s\n' "$1" | sed -n "s/^  $2: //p" | tr ' ' '\n' | grep -qx "$3"; }
PERM=$(read_zone --permanent)
RUN=$(read_zone)
# Zone changes are made in both layers with firewall-cmd, so no reload is needed. Each one is journaled with its
# inverse; on failure the inverses run in reverse order, then the zone file (and firewalld's .old copy of it) goes
# back byte for byte.
JOURNAL=""
change() {  # change [--permanent] --add-service=X|--remove-service=X|--add-port=X|--remove-port=X
    firewall-cmd "$@" --zone="$ZONE" >/dev/null
    inverse=$(printf '%s\n' "$*" | sed 's/--add-/--SMTPSUNDO-/; s/--remove-/--add-/; s/--SMTPSUNDO-/--remove-/')
    JOURNAL="$inverse
$JOURNAL"
}
undo() {
    printf '%s' "$JOURNAL" | while IFS= read -r op; do
        [ -z "$op" ] || firewall-cmd $op --zone="$ZONE" >/dev/null 2>&1 || true
    done
    if [ -e "$S.before" ]; then put_back "$S.before" "$ZFILE"; rm -f "$S.before"; fi
    if [ -e "$S.before-old" ]; then put_back "$S.before-old" "$ZFILE.old"; rm -f "$S.before-old"; fi
    if [ "$RELOADED" = yes ]; then firewall-cmd --reload || true; fi  # best effort: the files are what must be
    if [ "$FIRST" = yes ] && [ -d "$S" ]; then drop_state "$S"; fi
    rm -rf "$S.new"
}
RELOADED=no
FIRST=no
keep_before() {  # this run's starting point of the zone file and its .old copy
    rm -f "$S.before" "$S.before-old"
    [ ! -e "$ZFILE" ] || put "$ZFILE" "$S.before"
    [ ! -e "$ZFILE.old" ] || put "$ZFILE.old" "$S.before-old"
}
check_config() {
    check=$(firewall-cmd --check-config 2>&1) || fail "firewall-cmd --check-config failed: $check"
}

if [ ! -d "$S" ]; then
    say "zone $ZONE: nothing of ours to remove"
    exit 0
fi
# The zone file as we left it, or already as it was found (a remove that was interrupted before its reload):
# either way it goes back byte for byte and firewalld reads it again. Editing it through firewalld instead would
# have firewalld write out its own, older, idea of the zone.
as_found=no
if [ -e "$S/absent" ] && [ ! -e "$ZFILE" ]; then as_found=yes; fi
if [ -e "$S/orig" ] && [ -e "$ZFILE" ] && cmp -s "$ZFILE" "$S/orig"; then as_found=yes; fi
if [ "$as_found" = yes ] || { [ -e "$S/applied" ] && [ -e "$ZFILE" ] && cmp -s "$ZFILE" "$S/applied"; }; then
    # Nobody changed the zone file since: put it back byte for byte (firewalld rewrote it in its own format when
    # the service was added), then let firewalld read it again.
    guard_reload
    on_failure undo
    keep_before
    if [ -e "$S/absent" ]; then rm -f "$ZFILE"; else put "$S/orig" "$ZFILE"; fi
    if [ -e "$S/old-orig" ]; then put "$S/old-orig" "$ZFILE.old"; else rm -f "$ZFILE.old"; fi
    check_config
    RELOADED=yes
    firewall-cmd --reload >/dev/null || fail "firewall-cmd --reload failed"
else
    # Someone changed the zone since: take out only the service, and put back the port if we took it out.
    on_failure undo
    keep_before
    ! lists "$PERM" services "$SERVICE" || change --permanent --remove-service="$SERVICE"
    ! lists "$RUN" services "$SERVICE" || change --remove-service="$SERVICE"
    if [ -e "$S/had-port" ]; then
        lists "$PERM" ports "$PORT" || change --permanent --add-port="$PORT"
        lists "$RUN" ports "$PORT" || change --add-port="$PORT"
    fi
    check_config
fi
on_failure ""
rm -f "$S.before" "$S.before-old"
drop_state "$S"
say "zone $ZONE: back as found"

