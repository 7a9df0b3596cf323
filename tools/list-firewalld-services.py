#!/usr/bin/python3
"""Regenerate smtps/firewalld_services.txt from the firewalld installed here: every service firewalld itself defines
(/usr/lib/firewalld/services) and its ports, read with firewalld's own reader. Run with the system Python, which has
firewalld's library: /usr/bin/python3 tools/list-firewalld-services.py > smtps/firewalld_services.txt"""

import os
import subprocess

from firewall.core.io.service import service_reader

FOLDER = "/usr/lib/firewalld/services"
version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "firewalld"], capture_output=True, text=True,
                         check=False).stdout.strip() or "unknown"
HEADER = f"""\
# The services firewalld itself defines (/usr/lib/firewalld/services/NAME.xml) and their ports: name, then
# ports ('-': none, only protocols, modules or includes). Source: Debian 12's firewalld {version}, read
# with firewalld's own service reader (tools/list-firewalld-services.py). A firewalldService of one of these names
# would override firewalld's definition for every zone that uses it; only one that is exactly 465/tcp is allowed."""
print(HEADER)
for name in sorted(os.listdir(FOLDER)):
    if name.endswith(".xml"):
        service = service_reader(name, FOLDER)
        ports = " ".join(sorted(f"{port}/{protocol}" for port, protocol in service.ports)) or "-"
        print(f"{name[:-4]}\t{ports}")
