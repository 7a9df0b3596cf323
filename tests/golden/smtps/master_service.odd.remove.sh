#!/bin/sh
# master.cf service on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when rendered.
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

KEY=465
ENTRY='465 inet n - n - - smtpd -o syslog_name=postfix/smtps$HOME;x -o smtpd_tls_wrappermode=yes -o smtpd_sasl_auth_enable=yes -o smtpd_client_restrictions=permit_sasl_authenticated,reject -o content_filter=smtp-amavis:[127.0.0.1]:10026 -o smtpd_sender_restrictions=!*'
OTHER_KEYS='smtps submissions'
MASTER="$(postconf -h config_directory)/master.cf"
S="$STATE/master"
# postconf -M pads the columns and may wrap: compare entries with white space folded and the -o overrides sorted
# (their order does not change what Postfix does, and a stack's options come as a mapping).
canon() { tr '\t\n' '  ' | tr -s ' ' | sed 's/^ //; s/ $//; s/ -o /\n/g' | { IFS= read -r head || head=""; echo "$head"; sort; }; }

if [ ! -e "$S.orig" ]; then
    say "master.cf: nothing of ours to remove"
    exit 0
fi
postfix status >/dev/null 2>&1 || fail "postfix is not running"
cp -p "$MASTER" "$S.before"
if [ -e "$S.applied" ] && cmp -s "$MASTER" "$S.applied"; then
    # Nobody changed master.cf since our last change: put back the file as it was found, byte for byte.
    restore "$S.orig" "$MASTER"
else
    # Someone changed it since: undo only our entry, and put back the entry that was there before, if any.
    [ -z "$(postconf -M "$KEY/inet" 2>/dev/null)" ] || postconf -MX "$KEY/inet"
    if [ -s "$S.entry.orig" ]; then
        postconf -M "$(sed -n 1p "$S.entry.orig")/inet=$(sed -n 2p "$S.entry.orig")"
    fi
fi
if ! check=$(postfix check 2>&1); then
    restore "$S.before" "$MASTER"
    fail "postfix check failed: $check; master.cf left as it was"
fi
postfix reload >/dev/null 2>&1 || fail "postfix reload failed"
rm -f "$S.orig" "$S.entry.orig" "$S.applied" "$S.before"
rmdir "$STATE" 2>/dev/null || true  # the last one out takes the folder with it
say "master.cf: back as found; postfix reloaded"

