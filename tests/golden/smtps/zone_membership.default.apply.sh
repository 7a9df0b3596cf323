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
has() { firewall-cmd "$@" >/dev/null 2>&1; }
firewall-cmd --state >/dev/null 2>&1 || fail "firewalld is not running: start it (SMTPS needs the runtime firewall too)"
firewall-cmd --permanent --get-zones | tr ' ' '\n' | grep -qx "$ZONE" || fail "firewalld has no zone $ZONE"

if [ "$POLICY" = keep ] && has --permanent --zone="$ZONE" --query-port="$PORT"; then
    # iRedMail >= 1.5 opens 465 by a raw port; the service would only repeat it (existingPortPolicy=keep).
    if ! has --zone="$ZONE" --query-port="$PORT"; then
        firewall-cmd --zone="$ZONE" --add-port="$PORT" >/dev/null
        say "zone $ZONE: $PORT open by port in the permanent configuration only; opened at runtime too"
    else
        say "zone $ZONE: $PORT already open by port; kept as found"
    fi
    exit 0
fi
need_perm=yes; need_run=yes; drop_port=no
has --permanent --zone="$ZONE" --query-service="$SERVICE" && need_perm=no
has --zone="$ZONE" --query-service="$SERVICE" && need_run=no
if [ "$POLICY" = replace ] && { has --permanent --zone="$ZONE" --query-port="$PORT" ||
                                has --zone="$ZONE" --query-port="$PORT"; }; then
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
    if has --permanent --zone="$ZONE" --query-port="$PORT"; then : > "$S.had-port"; fi
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

