"""ports_of, the firewalld service script's reader of a service file someone else left (is it exactly 465/tcp?),
run here on hostile and odd files: what it reads must be what firewalld's own reader (expat, no namespaces) reads,
and a file that declares entities is refused before any is expanded."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_host_python import vermin

TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "firewalld_service.sh.j2"
LAUGHS = "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))


def program() -> str:
    text = TEMPLATE.read_text()
    start = text.index("<<'SMTPS_SERVICE_PORTS'\n") + len("<<'SMTPS_SERVICE_PORTS'\n")
    return text[start:text.index("\nSMTPS_SERVICE_PORTS\n", start) + 1]


def ports_of(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-I", "-S", "-", str(path)], input=program(), capture_output=True,
                          text=True, check=False, timeout=60)


@pytest.mark.parametrize(("xml", "found"), [
    ('<service>\n<!-- <port protocol="tcp" port="22"/> -->\n<port protocol="tcp"\n    port="465" />\n'
     '<port protocol="tcp" port="465"/></service>\n', "465/tcp"),
    ('<service><port protocol="tcp" port="465"/><include service="ssh"/><port protocol="gre" port=""/>'
     '<protocol value="gre"/></service>', "465/tcp include:ssh protocol:gre"),
    # A port it accepts from is more than 465/tcp.
    ('<service><port protocol="tcp" port="465"/><source-port protocol="tcp" port="1-65535"/></service>',
     "465/tcp source-port:1-65535/tcp"),
    # A default namespace: firewalld's reader, without namespaces, reads the port all the same.
    ('<service xmlns="urn:x"><port protocol="tcp" port="22"/></service>', "22/tcp"),
    ('<service><port protocol="tcp" port="465-465"/></service>', "465-465/tcp"),
])
def test_what_the_file_holds_as_firewalld_reads_it(tmp_path, xml, found):
    (tmp_path / "target.xml").write_text(xml)
    (tmp_path / "smtps.xml").symlink_to(tmp_path / "target.xml")
    done = ports_of(tmp_path / "smtps.xml")
    assert (done.returncode, done.stdout) == (0, f"{found}\n"), done.stderr


@pytest.mark.parametrize("dtd", [
    LAUGHS.replace("&a0;", "x"),  # a billion laughs: an expat before 2.4 expands it without a bound
    '<!ENTITY e SYSTEM "/etc/passwd">', '<!ENTITY % p "x">', '<!ENTITY p "465">',
])
def test_a_file_that_declares_entities_is_refused_before_any_is_expanded(tmp_path, dtd):
    (tmp_path / "smtps.xml").write_text(f'<?xml version="1.0"?>\n<!DOCTYPE service [{dtd}]>\n'
                                        '<service><short>&a9;</short><port protocol="tcp" port="465"/></service>\n')
    started = time.monotonic()
    done = ports_of(tmp_path / "smtps.xml")
    assert done.returncode != 0 and done.stdout == "" and "declares the entity" in done.stderr, done.stderr
    assert time.monotonic() - started < 10


def test_the_program_needs_no_python_newer_than_3_6(tmp_path):
    (tmp_path / "ports_of.py").write_text(program())
    done = vermin(tmp_path / "ports_of.py")
    assert done.returncode == 0, done.stdout + done.stderr
