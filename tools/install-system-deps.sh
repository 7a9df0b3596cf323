#!/usr/bin/env bash
# Install the Debian packages the lab and the tests need (and strace, for make bench-profile), when any is missing
# (a no-op otherwise).
set -euo pipefail

packages=(openssh-server openssh-client postfix firewalld nftables iptables dbus iproute2 util-linux procps
          openssl libsasl2-modules libsasl2-modules-db sasl2-bin python3 python3-venv
          sudo postgresql swaks strace)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing ${missing[*]}; run as root (or install them with apt-get)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# The lab runs sshd, D-Bus, firewalld and Postfix inside its own namespaces. The machine's own copies must not
# start when the packages install: firewalld would put the machine itself behind a firewall.
created_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
fi
cleanup() { if [ -n "$created_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT

echo "system-deps: installing ${missing[*]}"
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
