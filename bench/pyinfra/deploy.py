"""The same steps as `smtps up`, as a pyinfra 3 deploy: the bar the benchmark compares against
(bench/bench_pyinfra.py runs it on the same lab hosts). Run by pyinfra, in its own virtualenv (it pins a paramiko
older than ours); each host's data (the master.cf entry, the service file, which firewall) comes from the inventory
that the benchmark writes with this project's own settings.

What it does, per host, deciding from facts read in the plan (so a second run changes nothing):
- master.cf: the 465 entry (`postconf -M`), `postfix check`, then `postfix reload`, only where the entry differs;
- firewalld hosts: the service file `smtps.xml`, the service in zone `iredmail` (permanent), one `firewall-cmd
  --reload` where either changed;
- nftables hosts: `tcp dport 465 accept` inserted before the input chain's final drop, live, and the same line in
  /etc/nftables.conf, checked with `nft -c -f`.
What it does not: the certificate checks, the check from outside, the rollback snapshot, the lockout guard and the
commit-confirmed reload. The benchmark's comparison says so.
"""

from io import StringIO

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

data = host.data
ENTRY = data.smtps_entry
CANON = "tr -s ' \\t\\n' ' ' | sed 's/^ //; s/ $//'"
found = host.get_fact(Command, f"postconf -M 465/inet 2>/dev/null | {CANON}; true")
if (found or "").strip() != ENTRY:
    master = server.shell(name="master.cf: the 465 entry", commands=[
        f"postconf -M 465/inet='{ENTRY}'", "postfix check", "postfix reload"])

if data.smtps_firewall == "firewalld":
    service = files.put(name="firewalld: the smtps service", src=StringIO(data.smtps_service_xml),
                        dest="/etc/firewalld/services/smtps.xml", mode="644")
    zone_has = host.get_fact(Command, "firewall-cmd --permanent --zone=iredmail --query-service=smtps; true")
    changes = [service.did_change]
    if (zone_has or "").strip() != "yes":
        zone = server.shell(name="firewalld: smtps in zone iredmail",
                            commands=["firewall-cmd --permanent --zone=iredmail --add-service=smtps"])
        changes.append(zone.did_change)
    server.shell(name="firewalld: reload", commands=["firewall-cmd --reload"],
                 _if=lambda: any(change() for change in changes))
else:
    live = host.get_fact(Command, "nft list chain inet filter input | grep -c 'tcp dport 465 accept'; true")
    if (live or "0").strip() == "0":
        server.shell(name="nftables: 465 accepted live", commands=[
            "h=$(nft -a list chain inet filter input | sed -n 's/.*drop.*# handle //p' | tail -n 1); "
            "nft insert rule inet filter input position \"$h\" tcp dport 465 accept comment smtps-iredmail"])
    saved = host.get_fact(Command, "grep -c 'tcp dport 465 accept' /etc/nftables.conf; true")
    if (saved or "0").strip() == "0":
        server.shell(name="nftables: 465 accepted in /etc/nftables.conf", commands=[
            "cp -p /etc/nftables.conf /etc/nftables.conf.new && "
            "sed -i '0,/^\\( *\\)counter drop/s//\\1tcp dport 465 accept\\n&/' /etc/nftables.conf.new && "
            "nft -c -f /etc/nftables.conf.new && mv /etc/nftables.conf.new /etc/nftables.conf"])
