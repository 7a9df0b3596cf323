#!/bin/sh
# zone membership on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when rendered.
set -eu
umask 022
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HOST=mail1
# What the host looked like before the first change, and after the last one: destroy needs both.
STATE=/var/lib/smtps-iredmail
say() { printf 'smtps: %s: %s\n' "$HOST" "$*"; }
fail() { printf 'smtps: %s: %s\n' "$HOST" "$*" >&2; exit 1; }
# Put a copy of $1 at $2 in one step: copy beside the target, then rename over it. Nothing is ever half-written.
restore() { cp -p "$1" "$2.smtps-tmp" && mv -f "$2.smtps-tmp" "$2"; }
# Made on the first change only (see `remember`), so that a host never touched stays exactly as it was.
remember() { mkdir -p "$STATE" && chmod 700 "$STATE"; }

ZONE=iredmail
SERVICE=smtps
POLICY=keep
PORT=465/tcp
ZFILE="/etc/firewalld/zones/$ZONE.xml"
S="$STATE/zone-$ZONE"
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

if [ ! -e "$S.orig" ] && [ ! -e "$S.absent" ]; then
    say "zone $ZONE: nothing of ours to remove"
    exit 0
fi
if [ -e "$S.applied" ] && [ -e "$ZFILE" ] && cmp -s "$ZFILE" "$S.applied"; then
    # Nobody changed the zone file since: put it back byte for byte (firewalld rewrote it in its own format when
    # the service was added), then let firewalld read it again.
    if [ -e "$S.absent" ]; then rm -f "$ZFILE"; else restore "$S.orig" "$ZFILE"; fi
    if [ -e "$S.old-orig" ]; then restore "$S.old-orig" "$ZFILE.old"; else rm -f "$ZFILE.old"; fi
    firewall-cmd --reload >/dev/null || fail "firewall-cmd --reload failed"
else
    # Someone changed the zone since: take out only the service, and put back the port if we took it out.
    firewall-cmd --permanent --zone="$ZONE" --remove-service="$SERVICE" >/dev/null 2>&1 || true
    firewall-cmd --zone="$ZONE" --remove-service="$SERVICE" >/dev/null 2>&1 || true
    if [ -e "$S.had-port" ]; then
        firewall-cmd --permanent --zone="$ZONE" --add-port="$PORT" >/dev/null
        firewall-cmd --zone="$ZONE" --add-port="$PORT" >/dev/null
    fi
fi
check=$(firewall-cmd --check-config 2>&1) || fail "firewall-cmd --check-config failed: $check"
rm -f "$S.orig" "$S.absent" "$S.applied" "$S.before" "$S.had-port" "$S.old-orig" "$S.old-absent"
rmdir "$STATE" 2>/dev/null || true  # the last one out takes the folder with it
say "zone $ZONE: back as found"

