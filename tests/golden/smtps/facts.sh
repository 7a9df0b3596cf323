#!/bin/sh
# The SMTPS facts of mail1, read only: one `field=value` line each (smtps/facts.py parses them). Rendered by
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cd /
py() {
    py_bin=$1
    shift
    if "$py_bin" -I -c '' </dev/null >/dev/null 2>&1; then "$py_bin" -I "$@"; else "$py_bin" -E -s "$@"; fi
}
firewalld_python() {
    fw_py=$(sed -n '1s/^#! *\([^ ]*\).*/\1/p' "$(command -v firewall-cmd 2>/dev/null || echo /dev/null)" 2>/dev/null || true)
    case "${fw_py##*/}" in *python*) if [ -x "$fw_py" ]; then echo "$fw_py"; return 0; fi ;; esac
    echo python3
}
host_python() { if command -v python3 >/dev/null 2>&1; then echo python3; else firewalld_python; fi; }


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
exec 3>&1
if why=$(postfix_version_problem); then
    printf 'postfix.unusable=%s\n' "$(printf '%s' "$why" | tr '\n' ' ')"
elif ! why=$("$(host_python)" -I -S - facts 465 smtps submissions 2>&1 >&3 3>&- <<'SMTPS_MASTER_CF'
<smtps/master_cf.py, as it is>
SMTPS_MASTER_CF
); then
    printf 'postfix.unusable=its master.cf cannot be read here: %s\n' "$(printf '%s' "$why" | tr '\n' ' ')"
fi
exec 3>&-


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


FWPY=$(firewalld_python)

zone_probe() {  # zone_probe ZONE SERVICE PORT [apply|remove POLICY STATE FILE]: the zone's facts, then its plan
    "$FWPY" -I - "$@" <<'SMTPS_ZONE_PROBE'
<smtps/zone_probe.py, as it is>
SMTPS_ZONE_PROBE
}


zone_probe iredmail smtps 465/tcp


fi
if [ "$SMTPS_FIREWALL" = nftables ]; then


if ! command -v nft >/dev/null 2>&1; then
    echo "nft.live.chain=no-nft"
elif ! python3 -I -S - facts inet filter input /etc/nftables.conf <<'SMTPS_NFT_RULE'
<smtps/nft_rule.py, as it is>
SMTPS_NFT_RULE
then
    echo "nft.live.chain=unreadable"
fi


fi

