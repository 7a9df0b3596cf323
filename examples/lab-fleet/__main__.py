"""Lab mail hosts made by Pulumi, and SMTPS (implicit TLS on 465) turned on each by the public component.

Each host is a `LabHost` (lab/pulumi_host.py): its `address` and `host_key` are outputs, not known before it exists,
and go straight into `SmtpsHostArgs`. The engine makes the lab, then each host, then its SMTPS resources in order;
`destroy` takes SMTPS off each host, then removes the hosts, then the lab.

Config (all optional): `hosts` (default 2), `variants` (`mail2=iredmail-1.5,...`; by default the hosts alternate
between a firewalld and a Debian nftables one), `labName`, `labSubnet`, `stateDir`. The deploy key is the lab's:
SMTPS_SSH_KEY_FILE must name `<stateDir>/deploy_key` for the run (`python -m lab.fleet_example` sets it).
"""

import os
from pathlib import Path

import pulumi

from lab.fleet_example import settings
from lab.pulumi_host import Lab, LabHost
from lab.spec import SpecError
from smtps_iredmail import SmtpsHost, SmtpsHostArgs
from smtps_iredmail.core.credentials import SSH_KEY_FILE_ENV

config = pulumi.Config()
try:
    spec = settings(config.get, Path(__file__).resolve().parent)
except SpecError as err:
    raise pulumi.RunError(f"lab-fleet: {err}") from None
# The SMTPS providers log in with the key in SMTPS_SSH_KEY_FILE (read at their first SSH connection, after the Lab
# made it): it must be this lab's. A preview logs in nowhere.
if not pulumi.runtime.is_dry_run() and Path(os.environ.get(SSH_KEY_FILE_ENV) or "/").resolve() != spec.deploy_key:
    raise pulumi.RunError(f"lab-fleet: set {SSH_KEY_FILE_ENV}={spec.deploy_key} (the lab's deploy key) for this run")

lab = Lab("lab", spec)
hosts = {}
for host in spec.hosts:
    machine = LabHost(host.name, lab, host.index, host.variant.value)
    smtps = SmtpsHost(host.name, SmtpsHostArgs(
        address=machine.address,
        host_key=machine.host_key,
        # The certificate iRedMail's installer made on that platform: Outputs too.
        tls_cert=machine.tls_cert,
        tls_key=machine.tls_key,
        # Plain, not an Output: it decides which resources the host gets (firewalld's two, or the nftables rule).
        firewall=host.variant.firewall,
    ))
    hosts[host.name] = {"address": smtps.address, "firewall_used": smtps.firewall_used,
                        "tls_version": smtps.tls_version, "cert_sha256": smtps.cert_sha256}
pulumi.export("hosts", hosts)
