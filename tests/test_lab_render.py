"""The lab's rendered files, compared with golden files (UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab import render
from lab.render import HostPaths
from lab.spec import build_spec
from tests.goldens import check_golden

STOCK_MASTER = "smtp      inet  n       -       y       -       -       smtpd\n"
STOCK_FIREWALLD = "# firewalld config file\nDefaultZone=public\nCleanupOnExit=yes\n"
# A state dir with a space and both kinds of quotes: everything that reaches the shell must survive it.
ODD_ROOT = Path("/srv/lab with 'odd\" name/hosts/mail2")


def _spec():
    return build_spec(Path("/srv/lab"), 2, "mail2=iredmail-1.5")


def _check(name: str, text: str) -> None:
    check_golden(f"lab/{name}", text)


@pytest.mark.parametrize("index", [0, 1])
def test_master_cf_additions(index):
    host = _spec().hosts[index]
    text = render.master_cf(STOCK_MASTER, host)
    assert text.startswith(STOCK_MASTER)
    _check(f"master.cf.{host.variant.value}", text)


@pytest.mark.parametrize("index", [0, 1])
def test_iredmail_zone(index):
    host = _spec().hosts[index]
    _check(f"iredmail.xml.{host.variant.value}", render.iredmail_zone(host))


def test_main_cf():
    _check("main.cf.mail1", render.main_cf(_spec().hosts[0]))


def test_firewalld_conf_sets_the_default_zone_and_keeps_the_rest():
    assert render.firewalld_conf(STOCK_FIREWALLD) == STOCK_FIREWALLD.replace("public", "iredmail")
    assert render.firewalld_conf("Lockdown=no\n") == "Lockdown=no\nDefaultZone=iredmail\n"


def test_sshd_config():
    host = _spec().hosts[1]
    _check("sshd_config.mail2", render.sshd_config(host))


def test_boot_script_quotes_odd_paths():
    host = _spec().hosts[1]
    text = render.boot_script(host, HostPaths(ODD_ROOT), "/opt/py thon/bin/python3")
    _check("boot.sh.odd-paths", text)
    # The shell parses it; `sh -n` reads without running anything.
    subprocess.run(["sh", "-n"], input=text, text=True, check=True)
    assert "mount --bind '/srv/lab with '\"'\"'odd\" name/hosts/mail2' /run/lab" in text


def test_vmailbox_and_sasl():
    _check("vmailbox", render.vmailbox(["postmaster", "testuser"]))
    assert "auxprop_plugin: sasldb" in render.sasl_smtpd_conf()


def test_a_missing_template_value_is_an_error_naming_the_template():
    with pytest.raises(RuntimeError, match=r"main\.cf\.j2"):
        render._render("main.cf.j2")


def test_a_debian_host_gets_iredmails_nftables_conf_its_certificates_under_etc_ssl_and_fail2bans_table():
    spec = build_spec(Path("/srv/lab"), 2, "mail1=iredmail-debian,mail2=iredmail-debian-1.5")
    old, new = spec.hosts
    assert "tcp dport 465" not in render.nftables_conf(old) and "tcp dport 465 accept" in render.nftables_conf(new)
    assert render.nftables_conf(old) == (render.FILES / "nftables.conf-pre-1.5").read_text()  # byte for byte
    main_cf = render.main_cf(old)
    assert "smtpd_tls_cert_file = /etc/ssl/certs/iRedMail.crt\n" in main_cf
    assert "smtpd_tls_key_file = /etc/ssl/private/iRedMail.key\n" in main_cf
    text = render.boot_script(old, HostPaths(ODD_ROOT), "/usr/bin/python3")
    _check("boot.sh.debian", text)
    subprocess.run(["sh", "-n"], input=text, text=True, check=True)
    assert "firewalld" not in text and "nft -f /etc/nftables.conf" in text and "table inet f2b-table" in text
