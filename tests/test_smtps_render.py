"""The host-side scripts, rendered purely from settings, compared with golden files (UPDATE_GOLDEN=1 rewrites them).
Every script starts with the same prologue: its goldens hold it once (see `_rendered`)."""

from __future__ import annotations

import os
import random
import shlex
import subprocess
from collections.abc import Callable
from functools import cache
from unittest import mock

import pytest

from smtps_iredmail.core import (
    drift,
    firewalld_service,
    master_service,
    nftables_rule,
    rollback,
    templating,
    zone_membership,
)
from smtps_iredmail.core.hosts import parse_host
from smtps_iredmail.core.templating import TEMPLATES, Action, lockout_guard, master_cf, nft_rule, render, zone_probe
from tests.goldens import GOLDEN, changes, check_golden, patched

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"


@cache
def _template_comments() -> frozenset[str]:
    """The whole-line comments of the templates that no value is rendered into: the script has them as they are."""
    return frozenset(line for path in TEMPLATES.glob("*.j2") for line in path.read_text().splitlines()
                     if line.lstrip().startswith("#") and not line.startswith("#!") and "{" not in line)


def _shown(text: str) -> str:
    # The lockout guard, the zone probe, the nftables rule and the master.cf reader are Python files of their own
    # (linted and tested as such): the goldens show where they go.
    text = text.replace(lockout_guard(), "<smtps/lockout_guard.py, as it is>")
    text = text.replace(master_cf(), "<smtps/master_cf.py, as it is>")
    text = text.replace(nft_rule(), "<smtps/nft_rule.py, as it is>")
    text = text.replace(zone_probe(), "<smtps/zone_probe.py, as it is>")
    # A comment the template holds as it is reads there, not here; one a value is rendered into (the script's first
    # lines, naming its kind and host) stays, so that its quoting is compared too.
    return "".join(line for line in text.splitlines(keepends=True) if line.rstrip("\n") not in _template_comments())


def _check(name: str, text: str) -> None:
    check_golden(f"smtps/{name}", _shown(text))


def _settings(**extra):
    return parse_host("dc1", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": KEY, **extra})


# Values a shell would trip over if they were not quoted: $, ;, [], a ! and a *. (A `$` in an option needs
# allowOptions: Postfix expands it.)
ODD = {"allowOptions": ["syslog_name"],
       "options": {"syslog_name": "postfix/smtps$HOME;x", "smtpd_tls_wrappermode": "yes",
                   "content_filter": "smtp-amavis:[127.0.0.1]:10026", "smtpd_sender_restrictions": "!*"},
       "serviceShort": "SMTPS 'implicit' TLS", "serviceDescription": "Port 465 for mail clients; see RFC 8314.",
       "tlsCert": "/etc/ssl/mx+1.crt", "tlsKey": "/etc/ssl/private/mx_1.key"}


KINDS = {"master_service": lambda s, action: master_service.MODEL.script(s.name, (s.master, s.tls), action),
         "firewalld_service": lambda s, action: firewalld_service.MODEL.script(s.name, s.service, action),
         "zone_membership": lambda s, action: zone_membership.MODEL.script(s.name, s.zone, action),
         "nftables_rule": lambda s, action: nftables_rule.MODEL.script(s.name, s.nftables, action)}
# Odd values reach only the master.cf entry and the service XML: golden files for those scripts alone.
ODD_CASES = [("master_service", Action.APPLY), ("master_service", Action.REMOVE), ("firewalld_service", Action.APPLY)]


def _scripts(s, action: Action) -> dict[str, str]:
    return {kind: make(s, action) for kind, make in KINDS.items()}


# Every script starts with the same prologue (templates/_prologue.sh.j2: its helpers, the undo and the run's
# snapshot), included with the script's own values. Its goldens hold it once: prologue.sh is the prologue in full, as
# the zone membership's remove has it (it reloads firewalld and probes the zone); each script's golden says how its
# prologue differs (its kind and action, the parts it leaves out), then holds only what follows the prologue. A kind's
# apply and remove share their first lines after it: KIND.sh holds those, KIND.apply.sh and KIND.remove.sh the rest.
# The test renders the prologue with the values the script was rendered with and checks the script is exactly that,
# then the rest: every line of every script is compared. UPDATE_GOLDEN=1 rewrites them all.
PROLOGUE_OF = ("zone_membership", Action.REMOVE)


def _rendered(make: Callable[[], str]) -> tuple[str, str]:
    """A script as `make` renders it, as (its prologue, the rest). The prologue is rendered on its own with the values
    the script's template was given (its include sees those same values), and the script must start with it."""
    real = templating._scripts()
    renders: list[tuple[dict, str]] = []

    def spy(name: str, **values: object) -> str:
        renders.append((values, real(name, **values)))
        return renders[-1][1]

    with mock.patch.object(templating, "_scripts", lambda: spy):
        text = make()
    # The script's own render (a script may render other templates for its values: the service XML).
    [values] = [values for values, out in renders if out == text]
    prologue = real("_prologue.sh.j2", **values)
    assert text.startswith(prologue), "the script does not start with its prologue, rendered with its values"
    return _shown(prologue), _shown(text[len(prologue):])


def _prologue_changes(prologue: str, then: str) -> str:
    """The head of a script's golden: how its prologue differs from prologue.sh; then what comes after it."""
    lines = changes(_rendered(lambda: KINDS[PROLOGUE_OF[0]](_settings(), PROLOGUE_OF[1]))[0], prologue, "prologue.sh")
    if not lines:
        return f"# <prologue.sh as it is, then {then}>\n"
    return "".join([f"# <prologue.sh changed as below, then {then}>\n", *(f"# {line}\n" for line in lines),
                    "# </prologue.sh>\n"])


def _shared_start(first: str, second: str) -> int:
    """Where two texts' first differing line starts."""
    at = 0
    for a, b in zip(first.splitlines(keepends=True), second.splitlines(keepends=True), strict=False):
        if a != b:
            break
        at += len(a)
    return at


def test_the_prologue():
    prologue, _ = _rendered(lambda: KINDS[PROLOGUE_OF[0]](_settings(), PROLOGUE_OF[1]))
    check_golden("smtps/prologue.sh", prologue)


@pytest.mark.parametrize("kind", KINDS)
def test_scripts(kind):
    scripts = {action: _rendered(lambda action=action: KINDS[kind](_settings(), action)) for action in Action}
    (_, apply), (_, remove) = scripts[Action.APPLY], scripts[Action.REMOVE]
    shared = _shared_start(apply, remove)
    check_golden(f"smtps/{kind}.sh", apply[:shared])
    for action, (prologue, rest) in scripts.items():
        check_golden(f"smtps/{kind}.{action.value}.sh",
                     _prologue_changes(prologue, f"{kind}.sh, then the lines below") + rest[shared:])
        subprocess.run(["sh", "-n"], input=KINDS[kind](_settings(), action), text=True, check=True)  # runs nothing


@pytest.mark.parametrize(("kind", "action"), ODD_CASES)
def test_scripts_with_odd_values(kind, action):
    """Golden: the changes the odd values make to the script with the default ones, line by line."""
    default = "".join(_rendered(lambda: KINDS[kind](_settings(), action)))
    odd = "".join(_rendered(lambda: KINDS[kind](_settings(**ODD), action)))
    base = f"the default {action.value} script (prologue.sh as {kind}.{action.value}.sh changes it, {kind}.sh, " \
           f"{kind}.{action.value}.sh)"
    check_golden(f"smtps/{kind}.odd.{action.value}.sh",
                 "".join([f"# <{base}, changed by the odd values as below>\n",
                          *(f"{line}\n" for line in changes(default, odd, "it"))]))
    subprocess.run(["sh", "-n"], input=KINDS[kind](_settings(**ODD), action), text=True, check=True)


def _from_goldens(name: str, then: list[str]) -> str:
    """A script put together from its golden files: prologue.sh as NAME's head changes it, then `then`, then the
    rest of NAME."""
    lines = (GOLDEN / "smtps" / name).read_text().split("\n")
    prologue = (GOLDEN / "smtps" / "prologue.sh").read_text()
    if lines[0].startswith("# <prologue.sh changed as below"):
        end = lines.index("# </prologue.sh>")
        prologue = patched(prologue, [line.removeprefix("# ") for line in lines[1:end]])
        lines = lines[end + 1:]
    else:
        lines = lines[1:]
    return prologue + "".join((GOLDEN / "smtps" / part).read_text() for part in then) + "\n".join(lines)


@pytest.mark.skipif(bool(os.environ.get("UPDATE_GOLDEN")), reason="the goldens are being rewritten (by other "
                    "processes too, with -n): the next run puts them together")
def test_each_script_is_its_golden_files_put_together():
    """The goldens hold every line of every script: put together (each odd one as its changes to its default one),
    they are the scripts as rendered."""
    for kind, make in KINDS.items():
        for action in Action:
            default = _from_goldens(f"{kind}.{action.value}.sh", [f"{kind}.sh"])
            assert default == _shown(make(_settings(), action)), (kind, action)
            if (kind, action) in ODD_CASES:
                odd = (GOLDEN / "smtps" / f"{kind}.odd.{action.value}.sh").read_text().split("\n")[1:-1]
                assert patched(default, odd) == _shown(make(_settings(**ODD), action)), (kind, action)
    assert _from_goldens("rollback.sh", []) == _shown(rollback.script("mail1", "0123456789abcdef"))


def test_the_goldens_tell_their_texts_exactly():
    """What a golden of changes holds gives back the text it was taken from, whatever the two texts."""
    rnd = random.Random(27)
    for _ in range(2000):
        base, text = ("\n".join(rnd.choices("abcdef", k=rnd.randint(0, 12))) + rnd.choice(["", "\n"])
                      for _ in range(2))
        assert patched(base, changes(base, text, "base")) == text
    assert changes("a\nb\nc\nd\ne\nf\ng\n", "a\nX\nc\ng\n", "base") == \
        ["@@ -2 +2 @@", "-b", "+X", "@@ -4,3 +3,0 @@", "-d", "-e", "-f"]
    assert changes("1\n2\n3\n4\n5\n", "5\n", "base") == ["@@ -1,4 +0,0 @@", "-[4 lines of base: 1 to 4]"]


def test_every_golden_file_is_one_a_test_compares():
    """A file left from an earlier layout would look compared and be nothing."""
    compared = {"prologue.sh", "rollback.sh", "facts.sh", "facts.nftables.sh", "smtps.xml",
                *(f"{kind}.sh" for kind in KINDS),
                *(f"{kind}.{action.value}.sh" for kind in KINDS for action in Action),
                *(f"{kind}.odd.{action.value}.sh" for kind, action in ODD_CASES)}
    found = {p.name for p in (GOLDEN / "smtps").iterdir()}
    assert found <= compared, f"golden files no test writes (remove them): {sorted(found - compared)}"
    if not os.environ.get("UPDATE_GOLDEN"):  # being rewritten: some may not be there yet
        assert found == compared, f"golden files missing (UPDATE_GOLDEN=1 writes them): {sorted(compared - found)}"


def test_facts_script():
    text = drift.read_host_script(_settings())
    _check("facts.sh", text)
    subprocess.run(["sh", "-n"], input=text, text=True, check=True)


def test_odd_values_reach_the_shell_quoted():
    s = _settings(**ODD)
    text = master_service.MODEL.script(s.name, (s.master, s.tls), Action.APPLY)
    # One single-quoted word: the shell expands nothing in it.
    assert "ENTRY='465 inet n - n - - smtpd -o syslog_name=postfix/smtps$HOME;x " in text
    xml = firewalld_service.service_xml(s.service)
    assert "<short>SMTPS 'implicit' TLS</short>" in xml


def test_service_xml_is_the_seeds():
    _check("smtps.xml", firewalld_service.service_xml(_settings().service))


def test_undo_reports_a_failed_restore_and_keeps_its_backup(tmp_path):
    """The prologue's `restore`, run by dash: a put-back that fails returns non-zero and keeps the backup."""
    s = _settings()
    text = firewalld_service.MODEL.script("m", s.service, Action.APPLY)
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
    prologue, rest = _rendered(lambda: rollback.script("mail1", "0123456789abcdef"))
    check_golden("smtps/rollback.sh", _prologue_changes(prologue, "the lines below") + rest)
    subprocess.run(["sh", "-n"], input=text, text=True, check=True)
    # The run's name reaches every script quoted; it must be one (16 hex digits), never anything else.
    with pytest.raises(ValueError, match="malformed snapshot id"):
        rollback.script("mail1", "0123'; reboot #")


def test_a_run_keeps_its_snapshot_only_when_it_is_named():
    s = _settings()
    named = master_service.MODEL.script(s.name, (s.master, s.tls), Action.APPLY, None, "0123456789abcdef")
    assert "RUN=0123456789abcdef\n" in named and 'keep_for_run "$MASTER"' in named
    assert "RUN=''\n" in master_service.MODEL.script(s.name, (s.master, s.tls), Action.APPLY)


def test_the_guard_is_told_the_hosts_firewalld_pending_setting_in_every_script_that_reloads():
    s = _settings(firewalldPending="drop-runtime-only")
    assert s.connection.firewalld_pending == "drop-runtime-only"
    scripts = [firewalld_service.MODEL.script(s.name, s.service, Action.APPLY, s.connection),
               zone_membership.MODEL.script(s.name, s.zone, Action.REMOVE, s.connection),
               rollback.script(s.name, "0123456789abcdef", s.connection)]
    for text in scripts:
        assert "\"$FWPY\" -I - --pending=drop-runtime-only \"$@\" <<'SMTPS_LOCKOUT_GUARD'" in text
    # Unset, and with no connection: refuse, the fail-closed default.
    default = _settings()
    assert default.connection.firewalld_pending == "refuse"
    assert "- --pending=refuse \"$@\"" in firewalld_service.MODEL.script(s.name, s.service, Action.APPLY)


def test_facts_script_of_an_nftables_host():
    text = drift.read_host_script(_settings(firewall="nftables"))
    # What facts.sh (firewall: auto) reads of either firewall, without firewalld's part.
    lines = changes(_shown(drift.read_host_script(_settings())), _shown(text), "facts.sh")
    check_golden("smtps/facts.nftables.sh",
                 "".join(["# <facts.sh, changed as below>\n", *(f"{line}\n" for line in lines)]))
    subprocess.run(["sh", "-n"], input=text, text=True, check=True)
    # (firewall-cmd's first line may name the Python that reads master.cf, where python3 is missing: it is read, never
    # run.)
    assert "firewall-cmd --" not in text and "zone_probe " not in text


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
    for action in Action:
        text = KINDS["master_service"](_settings(), action)
        check = text.index("\npostfix_new_enough\n")
        marks = ("\non_failure undo\n", "\nkeep_for_run ", "\nstart_copy\n")
        assert check < min(text.index(mark) for mark in marks), action
