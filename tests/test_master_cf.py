"""The master.cf entry's reader and the apply's plan (smtps/master_cf.py), on `postconf -M` output as Postfix prints
it: facts in, plan out, no host."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from smtps_iredmail.core import master_cf, master_service
from smtps_iredmail.core.hosts import parse_host
from smtps_iredmail.core.master_cf import Facts, Filter, Plan, Wanted, canon, facts_lines, fields, plan, plan_lines
from smtps_iredmail.core.settings import SERVICE_KEYS
from smtps_iredmail.core.templating import Action
from tests.conftest import require

KEYS = SERVICE_KEYS
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVbq1Q3+Zk3lYbO0Ll1b9t8C1v3bqkqJzKp1Qw0m3fZ"
# An iRedMail host's `postconf -M`, padded as postconf prints it: Debian's stock entries, then iRedMail's own.
ENTRY_465 = ("465        inet  n       -       n       -       -       smtpd -o syslog_name=postfix/submissions "
             "-o smtpd_tls_wrappermode=yes -o smtpd_sasl_auth_enable=yes "
             "-o smtpd_client_restrictions=permit_sasl_authenticated,reject "
             "-o content_filter=smtp-amavis:[127.0.0.1]:10026")
IREDMAIL = "\n".join([
    "smtp       inet  n       -       y       -       1       postscreen",
    "smtpd      pass  -       -       y       -       -       smtpd",
    "submission inet  n       -       n       -       -       smtpd -o syslog_name=postfix/submission "
    "-o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes "
    "-o content_filter=smtp-amavis:[127.0.0.1]:10026",
    ENTRY_465,
    "pickup     unix  n       -       y       60      1       pickup",
    "smtp-amavis unix -       -       n       -       4       smtp -o syslog_name=postfix/amavis "
    "-o smtp_data_done_timeout=1200 -o smtp_send_xforward_command=yes -o disable_dns_lookups=yes",
    "127.0.0.1:10025 inet n   -       n       -       -       smtpd -o syslog_name=postfix/10025 "
    "-o content_filter= -o mynetworks_style=host",
    "dovecot    unix  -       n       n       -       -       pipe flags=DRhu user=vmail:vmail "
    "argv=/usr/lib/dovecot/deliver -f ${sender} -d ${recipient}",
    "",
])
# The entry this tool writes for those same settings, as settings.MasterServiceSettings.entry spells it.
WANTED_465 = ("465 inet n - n - - smtpd -o content_filter=smtp-amavis:[127.0.0.1]:10026 "
              "-o smtpd_client_restrictions=permit_sasl_authenticated,reject -o smtpd_sasl_auth_enable=yes "
              "-o smtpd_tls_wrappermode=yes -o syslog_name=postfix/submissions")


def wanted(entry: str = WANTED_465, key: str = "465", content_filter: Filter | None = None) -> Wanted:
    return Wanted(key, entry, KEYS, content_filter)


def without(listing: str, entry: str) -> str:
    return listing.replace(entry + "\n", "")


def test_an_entry_as_wanted_is_left_alone_whatever_its_padding_and_option_order():
    result = plan(Facts(IREDMAIL, {}), wanted())
    assert result == Plan(refuse="", write=False, current=True, others=(), found_key="465", found=ENTRY_465)


def test_a_wrapped_entry_reads_as_one():
    """postconf folds a long entry onto lines that start with white space (`postconf -Mf`, and as master.cf itself
    may be written): still one entry, and the same one."""
    wrapped = ENTRY_465.replace(" -o ", "\n    -o ")
    listing = IREDMAIL.replace(ENTRY_465, wrapped)
    result = plan(Facts(listing, {}), wanted())
    assert (result.write, result.current, result.found) == (False, True, wrapped)
    assert canon(wrapped) == canon(WANTED_465) == canon("\t" + WANTED_465 + " \n")
    assert canon(wrapped)[1][0] == "content_filter=smtp-amavis:[127.0.0.1]:10026"


def test_an_entry_that_differs_is_written():
    changed = WANTED_465.replace("smtpd_tls_wrappermode=yes", "smtpd_tls_wrappermode=no")
    assert plan(Facts(IREDMAIL, {}), wanted(changed)).write
    # One override more or less, a column, the command: each differs.
    assert plan(Facts(IREDMAIL, {}), wanted(WANTED_465 + " -o smtpd_banner=x")).write
    assert plan(Facts(IREDMAIL, {}), wanted(WANTED_465.replace(" n - - smtpd", " y - - smtpd"))).write
    assert plan(Facts(IREDMAIL, {}), wanted(WANTED_465.replace(" smtpd ", " smtpd -v "))).write


def test_no_entry_at_all_is_written_and_nothing_is_kept_as_found():
    result = plan(Facts(without(IREDMAIL, ENTRY_465), {}), wanted())
    assert result == Plan(refuse="", write=True, current=False, others=(), found_key="", found="")
    assert plan(Facts("", {}), wanted()) == result  # postconf printed nothing (a master.cf it cannot read)


@pytest.mark.parametrize("other", ["smtps", "submissions"])
def test_465_under_another_key_is_replaced_never_kept_beside(other):
    listing = IREDMAIL.replace(ENTRY_465, ENTRY_465.replace("465       ", other.ljust(10), 1))
    result = plan(Facts(listing, {}), wanted())
    assert (result.write, result.current, result.others) == (True, False, (other,))
    # Kept for destroy: the entry as found, under the key it was found under, as postconf printed it.
    assert (result.found_key, result.found.split()[0]) == (other, other)


def test_our_entry_as_wanted_beside_another_key_still_writes_and_removes_the_other():
    listing = IREDMAIL + "smtps      inet  n       -       n       -       -       smtpd\n"
    result = plan(Facts(listing, {}), wanted())
    assert (result.write, result.current, result.others, result.found_key) == (True, True, ("smtps",), "465")


def test_the_stacks_key_is_its_own():
    listing = IREDMAIL.replace(ENTRY_465, ENTRY_465.replace("465       ", "smtps     ", 1))
    result = plan(Facts(listing, {}), wanted(WANTED_465.replace("465 ", "smtps ", 1), key="smtps"))
    assert (result.write, result.current, result.others) == (False, True, ())
    # Only an inet entry counts: a unix service of that name is not 465.
    listing = without(IREDMAIL, ENTRY_465) + "smtps      unix  -       -       n       -       -       smtp\n"
    assert plan(Facts(listing, {}), wanted()).others == ()


def test_a_service_name_is_matched_whole():
    listing = without(IREDMAIL, ENTRY_465) + "127.0.0.1:465 inet n -  n       -       -       smtpd\n"
    result = plan(Facts(listing, {}), wanted())
    assert (result.current, result.others, result.found_key) == (False, (), "")


AMAVIS = Filter("smtp-amavis", "10024")


def test_a_content_filter_on_an_smtp_transport_and_a_free_port_passes():
    assert plan(Facts(IREDMAIL, {}), wanted(content_filter=AMAVIS)).refuse == ""


@pytest.mark.parametrize("transport", ["dovecot", "pickup", "no-such-service", "smtp"])
def test_a_content_filter_whose_transport_is_no_smtp_client_is_refused(transport):
    # dovecot is a pipe, pickup not an smtp client, smtp is an inet listener (not unix): none is a filter transport.
    result = plan(Facts(IREDMAIL, {}), wanted(content_filter=Filter(transport, "10024")))
    assert result.refuse == "no_transport"


def test_the_transport_is_read_by_its_command_not_its_options():
    lmtp = IREDMAIL.replace("4       smtp -o syslog_name=postfix/amavis", "4       lmtp -o syslog_name=smtp")
    assert plan(Facts(lmtp, {}), wanted(content_filter=AMAVIS)).refuse == "no_transport"
    with_args = IREDMAIL.replace("4       smtp -o", "4       smtp -v -o")
    assert plan(Facts(with_args, {}), wanted(content_filter=AMAVIS)).refuse == ""


# A master.cf whose listeners are written with leading zeros and names, as Postfix accepts them (it reads 0010026 as
# port 10026, and `submission` as /etc/services gives it).
LISTENERS = "\n".join([
    "smtp       inet  n       -       n       -       1       postscreen",
    "submission inet  n       -       n       -       -       smtpd",
    "127.0.0.1:0010026 inet n -       n       -       -       smtpd",
    "127.0.0.1:00 inet n      -       n       -       -       smtpd",
    "127.0.0.1:99999999999999999999999 inet n - n     -       -       smtpd",
    "[::1]:10030 inet n       -       n       -       -       smtpd",
    "smtp-amavis unix -       -       n       -       2       smtp",
    "",
])


@pytest.mark.parametrize(("port", "refused"), [("10026", True), ("587", True), ("25", True), ("10030", True),
                                               ("99999999999999999999999", True), ("10027", False), ("2", False),
                                               ("465", False)])
def test_the_filters_port_is_compared_as_a_number(port, refused):
    """A listener written `127.0.0.1:0010026` is port 10026 to Postfix: a filter on 10026 is refused (compared as
    text, it passed)."""
    ports = {"smtp": "25", "submission": "587"}
    result = plan(Facts(LISTENERS, ports), wanted(content_filter=Filter("smtp-amavis", port)))
    assert result.refuse == ("listener" if refused else "")


def test_a_named_port_etc_services_does_not_know_is_no_port():
    assert plan(Facts(LISTENERS, {}), wanted(content_filter=Filter("smtp-amavis", "587"))).refuse == ""


def test_the_entry_reads_as_its_columns_and_overrides():
    service, columns, options = fields(ENTRY_465)
    assert service == "465"
    assert columns == {"type": "inet", "private": "n", "unprivileged": "-", "chroot": "n", "wakeup": "-",
                       "maxproc": "-", "command": "smtpd"}
    assert options[0] == ("syslog_name", "postfix/submissions") and len(options) == 5
    assert options[-1] == ("content_filter", "smtp-amavis:[127.0.0.1]:10026")
    # Arguments of the command other than -o, and an override with an empty value.
    _, columns, options = fields("x inet n - n - - smtpd -v -o content_filter=")
    assert columns["command"] == "smtpd -v" and options == [("content_filter", "")]
    # A short entry: the missing columns are empty.
    assert fields("x inet n")[1]["command"] == ""


def test_the_facts_are_each_keys_entry_folded():
    """What the facts script prints (smtps/facts.py parses it): every key, empty when it has no entry."""
    assert facts_lines(IREDMAIL, list(KEYS)) == [f"master.465={' '.join(ENTRY_465.split())}", "master.smtps=",
                                                 "master.submissions="]


def test_the_plan_as_the_script_reads_it():
    listing = IREDMAIL.replace(ENTRY_465, ENTRY_465.replace("465       ", "smtps     ", 1).replace(" -o ", "\n  -o "))
    lines = plan_lines(plan(Facts(listing, {}), wanted()))
    assert lines[:5] == ["refuse=", "write=yes", "current=no", "others=smtps", "found.key=smtps"]
    assert lines[5].startswith("found.line=smtps      inet")
    assert lines[6] == "found.line=  -o syslog_name=postfix/submissions"
    assert len(lines) == 5 + 6  # the head line and its five overrides
    assert plan_lines(plan(Facts("", {}), wanted()))[4:] == ["found.key="]


def test_postconf_is_the_reader(monkeypatch, capsysbinary):
    """The host program asks postconf and answers from its output alone."""
    asked = []

    def postconf():
        asked.append("-M")
        return IREDMAIL

    monkeypatch.setattr(master_cf, "_postconf", postconf)
    assert master_cf.main(["plan", "465", WANTED_465, *KEYS, "--filter", "smtp-amavis", "10025"]) == 0
    assert asked == ["-M"]
    assert capsysbinary.readouterr().out.startswith(b"refuse=listener\nwrite=no\n")
    assert master_cf.main(["bogus"]) == 2


def test_the_program_runs_postconf_as_it_is_on_the_host(tmp_path):
    """The program as shipped, with python3 and a stand-in postconf on PATH: bytes of any encoding pass through."""
    require(shutil.which("python3") is not None, "python3 is needed")
    postconf = tmp_path / "postconf"
    postconf.write_bytes(b'#!/bin/sh\nprintf "%s\\n" "$*" > "$(dirname "$0")/args"\n'
                         b'printf "465 inet n - n - - smtpd -o smtpd_banner=caf\\351\\n"\n')
    postconf.chmod(0o755)
    out = subprocess.run(["python3", "-I", master_cf.__file__, "facts", *KEYS], capture_output=True, check=True,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin", "LC_ALL": "C"})
    assert out.stdout == b"master.465=465 inet n - n - - smtpd -o smtpd_banner=caf\xe9\nmaster.smtps=\n" \
                         b"master.submissions=\n"
    assert (tmp_path / "args").read_text() == "-M\n"


def env_functions(script: str) -> str:
    """The functions of a rendered script's start that run a host program: py, firewalld_python, host_python."""
    return "".join(re.search(rf"^{name}\(\) \{{(\n.*?\n\}}| [^\n]*\}})\n", script, re.S | re.M).group(0)
                   for name in ("py", "firewalld_python", "host_python"))


def run_plan(script: str, listing: str, folder: Path, after: str = "") -> subprocess.CompletedProcess:
    """A rendered master.cf apply script's plan step, run by dash with python3 and a stand-in postconf that prints
    LISTING: the host program as shipped, and the shell that reads its plan. AFTER: shell run next."""
    require(shutil.which("dash") is not None and Path("/usr/bin/python3").exists(), "dash and python3 are needed")
    postconf = folder / "postconf"
    postconf.write_text(f"#!/bin/sh\ncat <<'EOF'\n{listing}EOF\n")
    postconf.chmod(0o755)
    env = env_functions(script)
    step = re.search(r"\nmaster_cf\(\) \{.*?\n\[ -n \"\$write\" \] \|\| fail [^\n]*\n", script, re.S).group(0)
    filter_check = re.search(r"\ncase \"\$refuse\" in\n.*?\nesac\n", script, re.S)
    head = "\n".join(line for line in script.splitlines() if line.startswith(("KEY=", "ENTRY=")))
    program = (f"set -eu\nfail() {{ echo \"REFUSED: $*\"; exit 1; }}\n{head}\n{env}{step}"
               f"{filter_check.group(0) if filter_check else ''}{after}")
    return subprocess.run(["dash", "-c", program], capture_output=True, text=True, check=False,
                          env={"PATH": f"{folder}:/usr/bin:/bin"})


def test_the_script_reads_the_plan_as_planned(tmp_path):
    """The apply script as rendered: its plan step leaves the shell the plan, the entry found kept line by line."""
    from smtps_iredmail.core import master_service
    from smtps_iredmail.core.hosts import parse_host
    from smtps_iredmail.core.templating import Action

    s = parse_host("dc1", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": HOST_KEY})
    script = master_service.MODEL.script(s.name, (s.master, s.tls), Action.APPLY)
    show = 'printf "%s|%s|%s|%s|%s\\n" "$write" "$current" "$others" "$found_key" "$found"\n'
    wrapped = ENTRY_465.replace("465       ", "smtps     ", 1).replace(" -o ", "\n  -o ", 1)
    out = run_plan(script, IREDMAIL.replace(ENTRY_465, wrapped), tmp_path, show)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout == f"yes|no|smtps|smtps|{wrapped}\n"
    out = run_plan(script, without(IREDMAIL, ENTRY_465), tmp_path, show)
    assert out.stdout == "yes|no|||\n"
    # Padded as postconf pads it, and the overrides in another order (a stack's options come as a mapping).
    head, *overrides = s.master.entry.split(" -o ")
    entry = " -o ".join([head.replace(" ", "     ", 3), *reversed(overrides)])
    assert entry != s.master.entry and len(overrides) > 1
    out = run_plan(script, IREDMAIL.replace(ENTRY_465, entry), tmp_path, show)
    assert out.stdout == f"no|yes||465|{entry}\n"


def test_the_apply_reads_master_cf_with_firewallds_python_on_a_host_without_python3(tmp_path):
    """A RHEL-family host may have firewalld's platform-python and no `python3` command: the plan step then runs the
    reader with the interpreter on firewall-cmd's first line, as the programs that need firewalld's library do."""
    s = parse_host("dc1", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": HOST_KEY})
    script = master_service.MODEL.script(s.name, (s.master, s.tls), Action.APPLY)
    postconf = tmp_path / "postconf"
    postconf.write_text(f"#!/bin/sh\ncat <<'EOF'\n{IREDMAIL}EOF\n")
    postconf.chmod(0o755)
    firewall_cmd = tmp_path / "firewall-cmd"
    firewall_cmd.write_text(f"#!{sys.executable} -s\n")
    firewall_cmd.chmod(0o755)
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("cat", "sed"):
        os.symlink(shutil.which(tool), tools / tool)
    functions = env_functions(script)
    step = re.search(r"\nmaster_cf\(\) \{.*?\n\[ -n \"\$write\" \] \|\| fail [^\n]*\n", script, re.S).group(0)
    head = "\n".join(line for line in script.splitlines() if line.startswith(("KEY=", "ENTRY=")))
    program = f"set -eu\nfail() {{ echo \"REFUSED: $*\"; exit 1; }}\n{head}\n{functions}{step}echo \"write=$write\"\n"
    path = f"{tmp_path}:{tools}"
    shell = shutil.which("dash") or shutil.which("sh")
    assert subprocess.run([shell, "-c", "command -v python3"], env={"PATH": path}, check=False).returncode != 0
    out = subprocess.run([shell, "-c", program], capture_output=True, text=True, check=False, env={"PATH": path})
    assert out.returncode == 0 and out.stdout.endswith("write=yes\n"), out.stdout + out.stderr


def test_the_work_copy_reads_back_the_entry_word_for_word(tmp_path):
    """After `postconf -M KEY/inet=ENTRY` on the work copy, the script reads the entry back with postconf -M (padded and
    wrapped as postconf prints it) and goes on only when it is ENTRY word for word: a lost or reordered option, or a
    postconf that fails, stops the run. The entry's words are data: `*` in one is never a file name."""
    require(shutil.which("dash") is not None, "dash is needed")
    s = parse_host("dc1", {}, {"name": "mail1", "address": "10.0.0.1", "hostKey": HOST_KEY,
                               "options": {"smtpd_sender_restrictions": "!*"}})
    script = master_service.MODEL.script(s.name, (s.master, s.tls), Action.APPLY)
    functions = "".join(re.search(rf"^{name}\(\) \{{( [^\n]*\}}|[^\n]*\n.*?\n\}})\n", script, re.S | re.M).group(0)
                        for name in ("edit_copy", "folded", "reads_back"))
    head = "\n".join(line for line in script.splitlines() if line.startswith(("KEY=", "ENTRY=")))
    entry = s.master.entry
    assert "!*" in entry
    head_words, *overrides = entry.split(" -o ")
    padded = head_words.replace(" ", "     ") + "".join(f"\n  -o {o}" for o in overrides)
    (tmp_path / "smtpd_sender_restrictions=!x").write_text("")  # what the option's word would match as a file name

    def reads_back(printed: str, status: int = 0) -> int:
        postconf = tmp_path / "postconf"
        postconf.write_text(f"#!/bin/sh\necho \"$*\" > {tmp_path}/args\ncat <<'EOF'\n{printed}\nEOF\nexit {status}\n")
        postconf.chmod(0o755)
        program = f"set -eu\ncd {tmp_path}\nWORK=/etc/postfix/.smtps-work\n{head}\n{functions}reads_back\n"
        return subprocess.run(["dash", "-c", program], env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
                              check=False).returncode

    assert reads_back(padded) == 0
    assert (tmp_path / "args").read_text() == "-c /etc/postfix/.smtps-work -M 465/inet\n"
    assert reads_back(padded.rsplit("\n", 1)[0]) == 1  # an option lost
    assert reads_back(" -o ".join([head_words, *reversed(overrides)])) == 1  # the options reordered
    assert reads_back(padded, status=1) == 1
    assert reads_back(padded.replace("!*", "!x")) == 1
    assert reads_back("") == 1
