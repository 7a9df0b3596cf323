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


# postfix_new_enough: `postconf -M NAME/TYPE`, with which everything here reads and edits one master.cf entry, came
# with Postfix 2.11; older ones (CentOS 7 ships 2.10) read NAME/TYPE as an unknown service. Such a Postfix is refused
# before anything changes, by its version: the compiled-in mail_version (`postconf -d`), which main.cf cannot
# override (`mail_version = 3.9.0` there changes what `postconf -h` says, not what the binary does).
# postfix_version_problem prints why this Postfix will not do (status 0), or nothing (status 1): the read-only facts
# script reports it, the scripts that change master.cf refuse with it.
postfix_version_problem() {
    version=$(postconf -dh mail_version 2>/dev/null) || version=""
    case "$version" in
    [01].*|2.[0-9]|2.[0-9][!0-9]*|2.10|2.10[!0-9]*)
        printf '%s\n' "Postfix $version (mail_version) is older than 2.11, the first that edits one master.cf entry with postconf -M name/type, which this tool needs: upgrade Postfix" ;;
    [0-9]*.[0-9]*) return 1 ;;
    *) printf '%s\n' "cannot read Postfix's version (postconf -dh mail_version: '$version'): is Postfix installed?" ;;
    esac
}
postfix_new_enough() {
    why=$(postfix_version_problem) || return 0
    fail "$why; nothing was changed"
}

if postfix status >/dev/null 2>&1; then echo "postfix=running"; else echo "postfix=stopped"; fi
# A Postfix this tool cannot use: said in words (an older one reads no master.cf entry the way asked below).
if why=$(postfix_version_problem); then printf 'postfix.unusable=%s\n' "$(printf '%s' "$why" | tr '\n' ' ')"; fi
# Each key's entry, as postconf -M reads master.cf (smtps/master_cf.py, as it is, with python3: the apply's own
# reader). A host where it cannot be read says so (a silent nothing would read as "no entry").
if ! py python3 - facts 465 smtps submissions <<'SMTPS_MASTER_CF'
<smtps/master_cf.py, as it is>
SMTPS_MASTER_CF
then
    echo "postfix.unusable=its master.cf cannot be read here (that needs python3)"
fi


# Which firewall opens 465 on this host. `firewall` is the host's setting (auto, firewalld, nftables), or what auto
# found at the host's first apply (the state keeps it). Sets SMTPS_FIREWALL, or leaves it empty and says why in
# SMTPS_FIREWALL_WHY. Read only. auto: a running firewalld (iRedMail on the RHEL family), else nft with
# /etc/nftables.conf (the file Debian's nftables.service loads at boot, which iRedMail writes on Debian and Ubuntu);
# a firewalld that is installed but stopped is no answer: auto never guesses past it.
# firewalld_running: what `firewall-cmd --state` answers (firewalld is on D-Bus and its state is RUNNING), asked over
# D-Bus with dbus-send where it is installed: a few milliseconds instead of firewall-cmd's Python start (about 0.2 s
# of CPU, and this is asked up to twice a run). The name's owner is asked first, of the bus itself, so the question
# never starts a stopped firewalld by D-Bus activation: a firewalld that is stopped was stopped for a reason.
firewalld_running() {
    if command -v dbus-send >/dev/null 2>&1; then
        dbus-send --system --print-reply=literal --dest=org.freedesktop.DBus /org/freedesktop/DBus \
            org.freedesktop.DBus.NameHasOwner string:org.fedoraproject.FirewallD1 2>/dev/null | grep -qw true || return 1
        dbus-send --system --print-reply=literal --dest=org.fedoraproject.FirewallD1 /org/fedoraproject/FirewallD1 \
            org.freedesktop.DBus.Properties.Get string:org.fedoraproject.FirewallD1 string:state 2>/dev/null |
            grep -qw RUNNING
    else
        firewall-cmd --state >/dev/null 2>&1
    fi
}

SMTPS_FIREWALL=""
SMTPS_FIREWALL_WHY=""
case auto in
firewalld)
    if command -v firewall-cmd >/dev/null 2>&1; then SMTPS_FIREWALL=firewalld
    else SMTPS_FIREWALL_WHY="firewall: firewalld, but firewalld is not installed on this host (iRedMail on Debian and Ubuntu uses nftables: set firewall: nftables, or auto)"
    fi ;;
nftables)
    if command -v nft >/dev/null 2>&1; then SMTPS_FIREWALL=nftables
    else SMTPS_FIREWALL_WHY="firewall: nftables, but nft is not installed on this host"
    fi ;;
*)
    if command -v firewall-cmd >/dev/null 2>&1 && firewalld_running; then SMTPS_FIREWALL=firewalld
    elif command -v nft >/dev/null 2>&1 && [ -f /etc/nftables.conf ]; then SMTPS_FIREWALL=nftables
    elif command -v firewall-cmd >/dev/null 2>&1; then
        SMTPS_FIREWALL_WHY="firewall: auto: firewalld is installed but not running, and there is no /etc/nftables.conf: start firewalld, or set firewall: firewalld or nftables"
    else
        SMTPS_FIREWALL_WHY="firewall: auto: neither firewalld nor nftables (nft and /etc/nftables.conf) is on this host: set firewall"
    fi ;;
esac

printf 'firewall=%s\n' "$SMTPS_FIREWALL"
printf 'firewall.why=%s\n' "$SMTPS_FIREWALL_WHY"


if [ "$SMTPS_FIREWALL" = firewalld ]; then


FILE=/etc/firewalld/services/smtps.xml
if [ -f "$FILE" ]; then
    printf 'service.file=%s\n' "$(base64 -w0 < "$FILE")"
    printf 'service.mode=%s\n' "$(stat -c %a "$FILE")"
else
    echo "service.file=-"
fi


# firewalld's own Python: the interpreter on firewall-cmd's first line (a distribution's platform-python, where
# python3 may not even be installed) has firewalld's library. A firewall-cmd that is a wrapper (its first line is no
# Python) leaves python3 from PATH.
FWPY=$(sed -n '1s/^#! *\([^ ]*\).*/\1/p' "$(command -v firewall-cmd 2>/dev/null || echo /dev/null)" 2>/dev/null || true)
case "${FWPY##*/}" in *python*) [ -x "$FWPY" ] || FWPY=python3 ;; *) FWPY=python3 ;; esac

zone_probe() {  # zone_probe ZONE SERVICE PORT: the zone's facts, one field=value per line
    py "$FWPY" - "$@" <<'SMTPS_ZONE_PROBE'
<smtps/zone_probe.py, as it is>
SMTPS_ZONE_PROBE
}


zone_probe iredmail smtps 465/tcp


fi
if [ "$SMTPS_FIREWALL" = nftables ]; then


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


fi

