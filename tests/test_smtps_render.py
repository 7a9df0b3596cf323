"""The host-side scripts, rendered purely from settings, compared with golden files (UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from smtps_iredmail.core import drift, firewalld_service, master_service, nftables_rule, rollback, zone_membership
from smtps_iredmail.core.settings import parse_host
from smtps_iredmail.core.templating import Action, lockout_guard, master_cf, nft_rule, render, zone_probe
from tests.goldens import GOLDEN, check_golden

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"


def _check(name: str, text: str) -> None:
    # The lockout guard, the zone probe, the nftables rule and the master.cf reader are Python files of their own
    # (linted and tested as such): the goldens show where they go.
    text = text.replace(lockout_guard(), "<smtps/lockout_guard.py, as it is>")
    text = text.replace(master_cf(), "<smtps/master_cf.py, as it is>")
    text = text.replace(nft_rule(), "<smtps/nft_rule.py, as it is>")
    check_golden(f"smtps/{name}", text.replace(zone_probe(), "<smtps/zone_probe.py, as it is>"))


def _settings(**extra):
    return parse_host("dc1", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": KEY, **extra})


# Values a shell would trip over if they were not quoted: $, ;, [], a ! and a *. (A `$` in an option needs
# allowOptions: Postfix expands it.)
ODD = {"allowOptions": ["syslog_name"],
       "options": {"syslog_name": "postfix/smtps$HOME;x", "smtpd_tls_wrappermode": "yes",
                   "content_filter": "smtp-amavis:[127.0.0.1]:10026", "smtpd_sender_restrictions": "!*"},
       "serviceShort": "SMTPS 'implicit' TLS", "serviceDescription": "Port 465 for mail clients; see RFC 8314.",
       "tlsCert": "/etc/ssl/mx+1.crt", "tlsKey": "/etc/ssl/private/mx_1.key"}


def _scripts(s, action: Action) -> dict[str, str]:
    return {"master_service": master_service.script(s.name, (s.master, s.tls), action),
            "firewalld_service": firewalld_service.script(s.name, s.service, action),
            "zone_membership": zone_membership.script(s.name, s.zone, action),
            "nftables_rule": nftables_rule.script(s.name, s.nftables, action)}


@pytest.mark.parametrize("action", list(Action))
def test_scripts(action):
    for kind, text in _scripts(_settings(), action).items():
        _check(f"{kind}.default.{action.value}.sh", text)
        subprocess.run(["sh", "-n"], input=text, text=True, check=True)  # parses; runs nothing


# Odd values reach only the master.cf entry and the service XML: golden files for those scripts alone.
@pytest.mark.parametrize(("kind", "action"), [("master_service", Action.APPLY), ("master_service", Action.REMOVE),
                                              ("firewalld_service", Action.APPLY)])
def test_scripts_with_odd_values(kind, action):
    text = _scripts(_settings(**ODD), action)[kind]
    _check(f"{kind}.odd.{action.value}.sh", text)
    subprocess.run(["sh", "-n"], input=text, text=True, check=True)


def test_facts_script():
    text = drift.read_host_script(_settings())
    _check("facts.sh", text)
    subprocess.run(["sh", "-n"], input=text, text=True, check=True)


def test_odd_values_reach_the_shell_quoted():
    s = _settings(**ODD)
    text = master_service.script(s.name, (s.master, s.tls), Action.APPLY)
    # One single-quoted word: the shell expands nothing in it.
    assert "ENTRY='465 inet n - n - - smtpd -o syslog_name=postfix/smtps$HOME;x " in text
    xml = firewalld_service.service_xml(s.service)
    assert "<short>SMTPS 'implicit' TLS</short>" in xml


def test_service_xml_is_the_seeds():
    _check("smtps.xml", firewalld_service.service_xml(_settings().service))


def test_undo_reports_a_failed_restore_and_keeps_its_backup(tmp_path):
    """The prologue's `restore`, run by dash: a put-back that fails returns non-zero and keeps the backup."""
    s = _settings()
    text = firewalld_service.script("m", s.service, Action.APPLY)
    helpers = "\n".join(line for line in text.splitlines() if line.startswith(("put()", "put_back()", "restore()")))
    (tmp_path / "backup").write_text("old\n")
    failing = subprocess.run(["dash", "-c", f"{helpers}\nrestore {tmp_path}/backup {tmp_path}/missing-dir/file"],
                             capture_output=True, text=True)
    assert failing.returncode != 0 and (tmp_path / "backup").exists()
    (tmp_path / "target").write_text("new\n")
    working = subprocess.run(["dash", "-c", f"{helpers}\nrestore {tmp_path}/backup {tmp_path}/target"])
    assert working.returncode == 0 and not (tmp_path / "backup").exists()
    assert (tmp_path / "target").read_text() == "old\n"


def test_rollback_script():
    text = rollback.script("mail1", "0123456789abcdef")
    _check("rollback.sh", text)
    subprocess.run(["sh", "-n"], input=text, text=True, check=True)
    # The run's name reaches every script quoted; it must be one (16 hex digits), never anything else.
    with pytest.raises(ValueError, match="malformed run name"):
        rollback.script("mail1", "0123'; reboot #")


def test_a_run_keeps_its_snapshot_only_when_it_is_named():
    s = _settings()
    named = master_service.script(s.name, (s.master, s.tls), Action.APPLY, None, "0123456789abcdef")
    assert "RUN=0123456789abcdef\n" in named and 'keep_for_run "$MASTER"' in named
    assert "RUN=''\n" in master_service.script(s.name, (s.master, s.tls), Action.APPLY)


def test_the_guard_is_told_the_hosts_firewalld_pending_setting_in_every_script_that_reloads():
    s = _settings(firewalldPending="drop-runtime-only")
    assert s.connection.firewalld_pending == "drop-runtime-only"
    scripts = [firewalld_service.script(s.name, s.service, Action.APPLY, s.connection),
               zone_membership.script(s.name, s.zone, Action.REMOVE, s.connection),
               rollback.script(s.name, "0123456789abcdef", s.connection)]
    for text in scripts:
        assert "py \"$FWPY\" - --pending=drop-runtime-only \"$@\" <<'SMTPS_LOCKOUT_GUARD'" in text
    # Unset, and with no connection: refuse, the fail-closed default.
    default = _settings()
    assert default.connection.firewalld_pending == "refuse"
    assert "- --pending=refuse \"$@\"" in firewalld_service.script(s.name, s.service, Action.APPLY)


def test_facts_script_of_an_nftables_host():
    text = drift.read_host_script(_settings(firewall="nftables"))
    _check("facts.nftables.sh", text)
    subprocess.run(["sh", "-n"], input=text, text=True, check=True)
    assert "firewall-cmd" not in text and "zone_probe " not in text


@pytest.mark.parametrize(("version", "refused"), [
    ("2.10.1", "Postfix 2.10.1 (mail_version) is older than 2.11"),
    ("2.10-20121007", "Postfix 2.10-20121007 (mail_version) is older than 2.11"),
    ("2.9.4", "Postfix 2.9.4 (mail_version) is older than 2.11"),
    ("2.1", "Postfix 2.1 (mail_version) is older than 2.11"),
    ("1.1.12", "Postfix 1.1.12 (mail_version) is older than 2.11"),
    ("", "cannot read Postfix's version (postconf -dh mail_version: '')"),
    ("unknown", "cannot read Postfix's version"),
    ("2.11.0", None), ("2.11-20131205", None), ("3.7.11", None), ("3.10.0", None), ("10.1", None),
])
def test_a_postfix_older_than_2_11_is_refused_naming_its_version(version, refused):
    """The master.cf script's first check, with postconf answering `version` (a shell function stands in for it).
    Only the compiled-in value counts (-d): main.cf's `mail_version = 3.9.0`, which plain -h shows, changes nothing."""
    check = render("_postfix_version.sh.j2")
    script = (f"fail() {{ echo \"$*\" >&2; exit 1; }}\n"
              f"postconf() {{ if [ \"$1\" = -dh ]; then printf '%s\\n' {shlex.quote(version)};\n"
              "else echo 3.9.0; fi; }\n"
              f"{check}postfix_new_enough\necho fine\n")
    result = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=False)
    if refused is None:
        assert (result.returncode, result.stdout) == (0, "fine\n"), result.stderr
    else:
        assert result.returncode == 1 and refused in result.stderr and "nothing was changed" in result.stderr
        assert result.stdout == ""


def test_the_master_cf_scripts_check_the_postfix_version_before_any_change():
    for name in ("master_service.default.apply.sh", "master_service.default.remove.sh"):
        text = (GOLDEN / "smtps" / name).read_text()
        check = text.index("\npostfix_new_enough\n")
        changes = ("\non_failure undo\n", "\nkeep_for_run ", "\nstart_copy\n")
        assert check < min(text.index(mark) for mark in changes), name
