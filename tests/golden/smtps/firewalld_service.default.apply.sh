#!/bin/sh
# firewalld service on mail1: apply. Rendered by smtps-iredmail: every value below was quoted when rendered.
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

remember
cat > "$S.new" <<'SMTPS_SERVICE_XML'
<?xml version="1.0" encoding="utf-8"?>
<service>
  <short>Enable SMTPS</short>
  <description>Enable SMTPS.</description>
  <port protocol="tcp" port="465"/>
</service>
SMTPS_SERVICE_XML
# Written earlier and loaded by a reload that completed (.applied is written last): nothing to do.
if [ -f "$FILE" ] && cmp -s "$FILE" "$S.new" && [ -e "$S.applied" ] && cmp -s "$FILE" "$S.applied"; then
    rm -f "$S.new"
    say "firewalld service $NAME: up to date"
    exit 0
fi
if [ ! -e "$S.orig" ] && [ ! -e "$S.absent" ]; then
    if [ -e "$FILE" ]; then cp -p "$FILE" "$S.orig"; else : > "$S.absent"; fi
fi
rm -f "$S.before"
[ ! -e "$FILE" ] || cp -p "$FILE" "$S.before"
chmod 644 "$S.new"
cp -p "$S.new" "$FILE.smtps-tmp"
mv -f "$FILE.smtps-tmp" "$FILE"
if ! check=$(firewall-cmd --check-config 2>&1); then
    if [ -e "$S.before" ]; then restore "$S.before" "$FILE"; else rm -f "$FILE"; fi
    fail "firewall-cmd --check-config failed: $check; $FILE restored"
fi
# A new or changed service file reaches the running firewall only by a reload. --reload keeps established
# connections; --complete-reload would drop them.
firewall-cmd --reload >/dev/null || fail "firewall-cmd --reload failed"
cp -p "$FILE" "$S.applied"
rm -f "$S.new" "$S.before"
say "firewalld service $NAME: written; firewalld reloaded"

