#!/bin/sh
# firewalld service on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when rendered.
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

NAME=smtps
FILE="/etc/firewalld/services/$NAME.xml"
S="$STATE/service-$NAME"
firewall-cmd --state >/dev/null 2>&1 || fail "firewalld is not running: start it (SMTPS needs the runtime firewall too)"

if [ ! -e "$S.orig" ] && [ ! -e "$S.absent" ]; then
    say "firewalld service $NAME: nothing of ours to remove"
    exit 0
fi
rm -f "$S.before"
[ ! -e "$FILE" ] || cp -p "$FILE" "$S.before"
if [ -e "$S.absent" ]; then rm -f "$FILE"; else restore "$S.orig" "$FILE"; fi
if ! check=$(firewall-cmd --check-config 2>&1); then
    if [ -e "$S.before" ]; then restore "$S.before" "$FILE"; fi
    fail "firewall-cmd --check-config failed: $check; $FILE left as it was"
fi
firewall-cmd --reload >/dev/null || fail "firewall-cmd --reload failed"
rm -f "$S.orig" "$S.absent" "$S.applied" "$S.before" "$S.new"
rmdir "$STATE" 2>/dev/null || true  # the last one out takes the folder with it
say "firewalld service $NAME: back as found; firewalld reloaded"

