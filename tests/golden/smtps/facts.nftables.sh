#!/bin/sh
# The SMTPS facts of mail1, read only: one `field=value` line each (smtps/facts.py parses them). Rendered by
# smtps-iredmail: every value below was quoted when rendered.
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# From /, whoever starts the script: the login's folder (a deploy user's home, which sudo keeps) would be the
# current folder of every program below, and relative names would be looked up there.
cd /
# py PYTHON ARGS...: PYTHON isolated from the caller. -I (Python 3.4+) ignores the PYTHON* variables, the user's
# site folder and the current and script folders. An interpreter without it (Python 2, firewalld's on older hosts)
# gets -E -s: the variables and the user's site folder go, and the current folder is / (above). Which one is asked
# of the interpreter itself, never guessed from its name.
py() {
    py_bin=$1
    shift
    if "$py_bin" -I -c '' </dev/null >/dev/null 2>&1; then "$py_bin" -I "$@"; else "$py_bin" -E -s "$@"; fi
}


if postfix status >/dev/null 2>&1; then echo "postfix=running"; else echo "postfix=stopped"; fi
for key in 465 smtps submissions; do
    printf 'master.%s=%s\n' "$key" "$(postconf -M "$key/inet" 2>/dev/null | tr '\t\n' '  ' | tr -s ' ' | sed 's/^ //; s/ $//')"
done







# The nftables chain: live ruleset and /etc/nftables.conf (smtps/nft_rule.py, as it is, with python3).
# A host where it cannot be read says so (a silent nothing would read as "no drift").
if ! command -v nft >/dev/null 2>&1; then
    echo "nft.live.chain=no-nft"
elif ! py python3 - facts inet filter input /etc/nftables.conf <<'SMTPS_NFT_RULE'
<smtps/nft_rule.py, as it is>
SMTPS_NFT_RULE
then
    echo "nft.live.chain=unreadable"
fi


