#!/bin/sh
# master.cf service on mail1: apply. Rendered by smtps-iredmail: every value below was quoted when rendered.
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

CERT=/etc/pki/tls/certs/iRedMail.crt
TLSKEY=/etc/pki/tls/private/iRedMail.key

# A bad TLS setting only shows when a client connects: check the files before Postfix is told to use them.
[ -f "$CERT" ] || fail "TLS certificate $CERT does not exist"
[ -f "$TLSKEY" ] || fail "TLS key $TLSKEY does not exist"
cert_pub=$(openssl x509 -in "$CERT" -noout -pubkey 2>/dev/null) || fail "TLS certificate $CERT is not a PEM certificate"
key_pub=$(openssl pkey -in "$TLSKEY" -pubout 2>/dev/null) || fail "TLS key $TLSKEY is not a readable private key"
[ "$cert_pub" = "$key_pub" ] || fail "TLS key $TLSKEY does not belong to certificate $CERT"
openssl x509 -in "$CERT" -noout -checkend 0 >/dev/null || fail "TLS certificate $CERT has expired"
postfix status >/dev/null 2>&1 || fail "postfix is not running"

want=$(printf '%s\n' "$ENTRY" | canon)
current=$(postconf -M "$KEY/inet" 2>/dev/null | canon)
# The same port under another key (iRedMail writes 465, Postfix's examples smtps or submissions) is replaced,
# never kept beside ours: two entries for one port would stop Postfix from starting the second.
others=""
for k in $OTHER_KEYS; do
    [ -z "$(postconf -M "$k/inet" 2>/dev/null)" ] || others="$others $k"
done
if [ "$current" = "$want" ] && [ -z "$others" ]; then
    say "master.cf $KEY/inet: up to date"
    exit 0
fi

remember
if [ ! -e "$S.orig" ]; then
    : > "$S.entry.orig.tmp"
    for k in 465 smtps submissions; do
        line=$(postconf -M "$k/inet" 2>/dev/null) || line=""
        if [ -n "$line" ]; then
            printf '%s\n%s\n' "$k" "$line" > "$S.entry.orig.tmp"
            break
        fi
    done
    cp -p "$MASTER" "$S.orig.tmp"
    mv "$S.entry.orig.tmp" "$S.entry.orig"
    mv "$S.orig.tmp" "$S.orig"
fi
cp -p "$MASTER" "$S.before"

for k in $others; do
    postconf -MX "$k/inet"
done
postconf -M "$KEY/inet=$ENTRY"

problem=""
check=$(postfix check 2>&1) || problem="postfix check failed: $check"
if [ -z "$problem" ] && [ "$(postconf -M "$KEY/inet" 2>/dev/null | canon)" != "$want" ]; then
    problem="postconf -M $KEY/inet does not read back the entry"
fi
if [ -n "$problem" ]; then
    restore "$S.before" "$MASTER"
    fail "$problem; master.cf restored"
fi
if ! postfix reload >/dev/null 2>&1; then
    restore "$S.before" "$MASTER"
    postfix reload >/dev/null 2>&1 || true
    fail "postfix reload failed; master.cf restored"
fi
cp -p "$MASTER" "$S.applied"
rm -f "$S.before"
say "master.cf $KEY/inet: written${others:+ (replaced$others)}; postfix reloaded"

