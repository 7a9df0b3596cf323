#!/bin/sh
# zone membership on mail1: apply. Rendered by smtps-iredmail: every value below was quoted when rendered.
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

if [ "$POLICY" = keep ] && lists "$PERM" ports "$PORT"; then
    # iRedMail >= 1.5 opens 465 by a raw port; the service would only repeat it (existingPortPolicy=keep).
    if ! lists "$RUN" ports "$PORT"; then
        firewall-cmd --zone="$ZONE" --add-port="$PORT" >/dev/null
        say "zone $ZONE: $PORT open by port in the permanent configuration only; opened at runtime too"
    else
        say "zone $ZONE: $PORT already open by port; kept as found"
    fi
    exit 0
fi
need_perm=yes; need_run=yes; drop_port=no
lists "$PERM" services "$SERVICE" && need_perm=no
lists "$RUN" services "$SERVICE" && need_run=no
if [ "$POLICY" = replace ] && { lists "$PERM" ports "$PORT" || lists "$RUN" ports "$PORT"; }; then
    drop_port=yes
fi
if [ "$need_perm$need_run$drop_port" = nonono ]; then
    say "zone $ZONE: service $SERVICE up to date"
    exit 0
fi
remember
if [ ! -e "$S.orig" ] && [ ! -e "$S.absent" ]; then
    # firewalld keeps its previous copy as $ZFILE.old whenever it rewrites a zone: remember that one too.
    if [ -e "$ZFILE.old" ]; then cp -p "$ZFILE.old" "$S.old-orig"; else : > "$S.old-absent"; fi
    if lists "$PERM" ports "$PORT"; then : > "$S.had-port"; fi
    if [ -e "$ZFILE" ]; then cp -p "$ZFILE" "$S.orig"; else : > "$S.absent"; fi
fi
rm -f "$S.before"
[ ! -e "$ZFILE" ] || cp -p "$ZFILE" "$S.before"
# Permanent and runtime are separate: change both, so no reload is needed and none is made.
if [ "$drop_port" = yes ]; then
    firewall-cmd --permanent --zone="$ZONE" --remove-port="$PORT" >/dev/null 2>&1 || true
    firewall-cmd --zone="$ZONE" --remove-port="$PORT" >/dev/null 2>&1 || true
fi
[ "$need_perm" = no ] || firewall-cmd --permanent --zone="$ZONE" --add-service="$SERVICE" >/dev/null
[ "$need_run" = no ] || firewall-cmd --zone="$ZONE" --add-service="$SERVICE" >/dev/null
if ! check=$(firewall-cmd --check-config 2>&1); then
    if [ -e "$S.before" ]; then restore "$S.before" "$ZFILE"; else rm -f "$ZFILE"; fi
    firewall-cmd --reload >/dev/null 2>&1 || true
    fail "firewall-cmd --check-config failed: $check; zone $ZONE restored"
fi
[ ! -e "$ZFILE" ] || cp -p "$ZFILE" "$S.applied"
rm -f "$S.before"
say "zone $ZONE: service $SERVICE added (permanent and runtime)"

