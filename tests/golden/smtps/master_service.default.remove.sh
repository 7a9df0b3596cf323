#!/bin/sh
# 'master.cf service' on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when
# rendered.
set -eu
umask 022
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# From /, whoever starts the script: the login's folder (a deploy user's home, which sudo keeps) would be the
# current folder of every program below, and relative names would be looked up there.
cd /
# py PYTHON ARGS...: PYTHON isolated from the caller. -I (Python 3.4+) ignores the PYTHON* variables, the user's
# site folder and the current and script folders. An interpreter without it (Python 2, firewalld's on older hosts)
# gets -E -s: the variables and the user's site folder go, and the current folder is / (above). Which one is asked
# of the interpreter itself, never guessed from its name.
py() {
    py_bin=$1
    shift
    if "$py_bin" -I -c '' </dev/null >/dev/null 2>&1; then "$py_bin" -I "$@"; else "$py_bin" -E -s "$@"; fi
}

# A dropped SSH connection closes our stdout and stderr: a write to them must fail (and be handled), never kill the
# script with SIGPIPE before its EXIT trap has undone what it changed.
trap '' PIPE
HOST=mail1
KIND='master.cf service'
# What the host looked like before the first change, and after the last one: destroy needs both. One folder per
# resource under it, made whole as NAME.new and renamed into place, so it is always complete or absent.
STATE=/var/lib/smtps-iredmail
say() { printf 'smtps: %s: %s\n' "$HOST" "$*" || true; }
# This run's snapshot, for its rollback: RUN names the engine run (one per provider process: one per `up`). Before
# a script of this run first changes a file, the file as this run found it (or that there was none) is kept under
# RUNDIR, and at the run's first change on the host, the state folder too. If the check from outside then fails,
# the rollback script puts them back (templates/rollback.sh.j2). One folder per run, named by it: a second run on
# this host (another stack naming it, a retry) that starts while this one's check still runs keeps its own, and this
# one's rollback still finds what this run found. Empty RUN (a script rendered by hand or by a test): nothing is kept.
RUN=''
RUNS=/run/smtps-iredmail/runs
RUNDIR="$RUNS/$RUN"
KEPT=""
keep_for_run() {  # keep_for_run FILE...
    [ -n "$RUN" ] || return 0
    KEPT=yes
    if [ ! -d "$RUNDIR" ]; then
        mkdir -p -m 700 "$RUNS"
        # A snapshot serves only until its run's check from outside ends (minutes, an hour for a large fleet):
        # one a day untouched is of no run still going. Also the single folder of earlier versions.
        find "$RUNS" -mindepth 1 -maxdepth 1 -mmin +1440 -exec rm -rf {} +
        rm -rf /run/smtps-iredmail/run "$RUNDIR.new"
        mkdir -m 700 "$RUNDIR.new"
        if [ -d "$STATE" ]; then cp -a "$STATE" "$RUNDIR.new/state"; fi
        : > "$RUNDIR.new/targets"
        printf '%s\n' "$RUN" > "$RUNDIR.new/id"
        mv -T "$RUNDIR.new" "$RUNDIR"
    fi
    touch "$RUNDIR"
    for f in "$@"; do
        if grep -qxF -- "$f" "$RUNDIR/targets"; then continue; fi
        n=$(wc -l < "$RUNDIR/targets" | tr -d ' ')
        if [ -e "$f" ]; then cp -p "$f" "$RUNDIR/$n"; fi
        printf '%s\n' "$f" >> "$RUNDIR/targets"
    done
}
# entry_sum PATH: what a file or folder holds (its tree, modes and contents), or "absent"; to compare two of them.
entry_sum() {
    [ -e "$1" ] || [ -L "$1" ] || { echo absent; return 0; }
    (cd "${1%/*}" && find "${1##*/}" -printf '%y %m %p %l\n' && find "${1##*/}" -type f -exec sha256sum {} +) |
        LC_ALL=C sort
}
# left_for_run FILE...: each FILE as this run left it. A rollback puts a file back only while it is still that: an
# edit someone made after this run wrote it is theirs, and stays.
left_for_run() {
    [ -n "$RUN" ] && [ -d "$RUNDIR" ] || return 0
    for f in "$@"; do
        n=$(grep -nxF -- "$f" "$RUNDIR/targets" | head -n 1 | cut -d: -f1)
        [ -n "$n" ] || continue
        n=$((n - 1))
        rm -f "$RUNDIR/left-$n" "$RUNDIR/left-$n.absent"
        if [ -e "$f" ]; then cp -p "$f" "$RUNDIR/left-$n"; else : > "$RUNDIR/left-$n.absent"; fi
    done
}
# The state folder S of a script that kept files for this run, as the script leaves it (the EXIT trap, on success):
# the rollback puts a resource's state folder back only while it is still that. Another run's resource, or one
# changed since, is not this run's to put back.
left_state() {
    [ -n "$KEPT" ] && [ -n "${S:-}" ] && [ -d "$RUNDIR" ] || return 0
    entry_sum "$S" > "$RUNDIR/left-state-${S##*/}" || rm -f "$RUNDIR/left-state-${S##*/}"
}
fail() { printf 'smtps: %s: %s\n' "$HOST" "$*" >&2 || true; exit 1; }
# One run at a time on a host: two runs (two stacks naming one machine, a retry while the first still runs) would
# otherwise remove each other's work copies. The lock file lives in a folder of root's own under /run (which a
# reboot empties), not in the world-writable /run/lock, where another user could have put a link in its place. It
# holds who has the lock, for the message of a run that waited too long.
LOCK=/run/smtps-iredmail/lock
mkdir -p -m 700 /run/smtps-iredmail
[ -d /run/smtps-iredmail ] && [ ! -L /run/smtps-iredmail ] || fail "/run/smtps-iredmail is not a folder"
command -v flock >/dev/null 2>&1 || fail "flock (util-linux) is needed to run one change at a time"
exec 9>>"$LOCK"
if ! flock -w 60 9; then
    fail "another smtps-iredmail run holds this host's lock ($(cat "$LOCK" 2>/dev/null || echo unknown)); nothing was changed"
fi
: > "$LOCK"
printf 'pid %s, %s, from %s\n' "$$" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${SSH_CONNECTION:-a local shell}" >> "$LOCK"
# Put a copy of $1 at $2 in one step: copy beside the target, then rename over it. Nothing is ever half-written,
# and a copy that fails (a full disk) takes its partial file with it.
put() { { cp -p "$1" "$2.smtps-tmp" && mv -f "$2.smtps-tmp" "$2"; } || { rm -f "$2.smtps-tmp"; return 1; }; }
# Put $1 back at $2 only if they differ: an undo that has nothing to put back writes nothing (and so cannot fail).
put_back() { cmp -s "$1" "$2" || put "$1" "$2"; }
# restore BACKUP TARGET: put BACKUP back and drop it; on failure keep it (the next run, or a person, needs it) and
# return non-zero. Undo steps use this and `||` chains: `set -e` is off inside a function called from `if`.
restore() { if [ -e "$1" ]; then put_back "$1" "$2" && rm -f "$1"; fi; }
# What a run interrupted by a kill may have left: work copies beside the files, unfinished state folders.
tidy() {  # tidy FILE... : remove FILE.smtps-tmp for each
    for f in "$@"; do rm -f "$f.smtps-tmp"; done
    [ ! -d "$STATE" ] || rm -rf "$STATE"/*.new "$STATE"/*.gone
}
# The state folder of a resource: made (with its first snapshot) only on the first change, so that a host never
# touched stays exactly as it was; taken away whole, by one rename, with the last undo.
begin_state() {  # begin_state DIR: an empty DIR.new to fill; commit_state DIR puts it in place
    mkdir -p "$STATE" && chmod 700 "$STATE"
    rm -rf "$1.new" && mkdir "$1.new"
}
commit_state() { mv "$1.new" "$1"; }
# The end of an undo that put back firewalld's files: firewalld reads them again if this run had it reload them,
# and the watcher is stopped once the files went back (RC 0) and that reload worked. If the reload fails, the armed
# watcher reloads them when its time comes (or the next run does, at its start): it stays armed, and this returns 1.
# reload_back RC
reload_back() {  # (RELOADED is yes only in a script that reloads firewalld)
    [ "$RELOADED" = yes ] || return 0
    firewall-cmd --reload >/dev/null 2>&1 || return 1
    [ "$1" -ne 0 ] || disarm
}
# The end of every kind's undo, once its files went back (RC 0): a state folder this run made goes too, and an
# unfinished one always. undo_state RC: RC, or 1 if the folder could not go.
undo_state() {
    rc=$1
    if [ "$rc" -eq 0 ] && [ "$FIRST" = yes ] && [ -d "$S" ]; then drop_state "$S" || rc=1; fi
    rm -rf "$S.new"
    return "$rc"
}
drop_state() {  # drop_state DIR: gone in one rename; the state root goes with the last resource's
    mv "$1" "$1.gone" && rm -rf "$1.gone"
    rmdir "$STATE" 2>/dev/null || true
}
# A file this tool wrote is put back byte for byte at destroy only while it is exactly what this tool last wrote.
# changed_since DIR FILE BEFORE: has FILE changed since this tool last wrote it (DIR/applied), or since it was
# found (DIR/orig)? Then someone else edited it, and what was found is no longer what destroy should put back.
# Unless a run of ours was interrupted (its BEFORE copy is still there) after starting from one of those: then the
# change is that run's own.
changed_since() {
    for known in "$1/applied" "$1/orig"; do
        if [ -e "$known" ] && cmp -s "$2" "$known"; then return 1; fi
        if [ -e "$known" ] && [ -e "$3" ] && cmp -s "$3" "$known"; then return 1; fi
    done
    return 0
}
# On any failure after the first change (a failed command under `set -e`, `fail`, or a signal), the EXIT trap runs
# the undo named by `on_failure`, so the host's files end as they were before this run.
UNDO=""
on_failure() { UNDO="$1"; }
finish() {
    # Its own name: the undo functions set `rc`, and every shell variable is global.
    finish_status=$?
    trap - EXIT
    if [ "$finish_status" -eq 0 ]; then left_state || true; fi
    if [ "$finish_status" -ne 0 ] && [ -n "$UNDO" ]; then
        if "$UNDO" >/dev/null 2>&1; then
            printf 'smtps: %s: %s: failed; what this run changed is undone\n' "$HOST" "$KIND" >&2 || true
        else
            printf 'smtps: %s: %s: failed, and undoing it failed too: check the host\n' "$HOST" "$KIND" >&2 || true
        fi
    fi
    exit "$finish_status"
}
trap finish EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
# Commit-confirmed firewalld reloads. Before a reload that can change who reaches this host, `arm` keeps the
# firewalld files this run changes as they were, and starts a watcher that outlives this SSH session. Only a fresh
# SSH login from the controller (a new TCP connection, a new authentication) after the reload disarms it. Otherwise,
# CONFIRM seconds later, the watcher puts those files back and reloads firewalld: the host reverts by itself.
# Every script first settles an earlier change that still waits for its confirmation (below); only the scripts
# that reload firewalld arm one.
ARM=/run/smtps-iredmail/confirm
ARMED=""
WATCHER=0
# The watcher: $1 the arm folder, $2 the seconds to wait; SMTPS_REVERT in its environment, the token it was armed
# with (so that it is told from any other process at a reused pid). A third argument "held" means: run now, by a
# script that holds the host's lock already. It reads the targets from the folder (data, never code: only
# firewalld's own files are written). Every step is checked. A file goes back only while it is still as the run
# left it (left-N; none: the run left no file): one changed since is someone else's, and is named. When a step
# fails, the copies stay, firewalld is not reloaded (a mix of two configurations never goes live), the token is
# renamed token.failed (a rename needs no free space: the mark holds on a full disk) and the next run here reports
# it and stops (pending_confirm). It says what it did in syslog, and in the folder's report when there is more than
# "reverted".
# It acts only on its own change: the folder's token must be its SMTPS_REVERT. A watcher whose change was settled
# without it (its run killed before the folder was complete, a change taken as stood) must never revert the next
# run's change, armed at the same path. It checks before it marks anything, and under the lock, where nothing else
# touches the folder (a run, a confirmation, a rollback: each holds the lock while it changes it).
REVERT='sleep "$2"
A=$1
mine() { [ -n "${SMTPS_REVERT:-}" ] && [ -f "$A/token" ] && [ "$(cat "$A/token")" = "$SMTPS_REVERT" ]; }
if [ "${3:-}" != held ]; then
    exec 9>>/run/smtps-iredmail/lock
    # Bounded: a run holding the lock settles this change itself (pending_confirm), and then this one is gone.
    if ! flock -w 600 9; then
        mine || exit 0
        mv -f "$A/token" "$A/token.failed"
        echo "the host lock stayed busy for 600 s: nothing was put back" > "$A/report"
        logger -t smtps-iredmail "an unconfirmed firewalld change was NOT reverted (lock busy): see $A" 2>/dev/null
        exit 1
    fi
fi
mine || exit 0
tok=$SMTPS_REVERT
back() { if [ -e "$A/$1" ]; then [ -e "$2" ] && cmp -s "$A/$1" "$2"; else [ ! -e "$2" ]; fi; }
as_left() { if [ -e "$A/left-$1" ]; then [ -e "$2" ] && cmp -s "$A/left-$1" "$2"; else [ ! -e "$2" ]; fi; }
failed=""
theirs=""
# A copy goes back only as a file firewalld can read: a plain file of at most 1 MiB that parses as XML (firewalld
# skips a zone file it cannot parse, and its interfaces fall to the default zone). All are checked before any goes
# back. SMTPS_PY: the interpreter of firewalld, from the script that started this one (never from the folder).
py=${SMTPS_PY:-python3}
pyflags=-I
"$py" -I -c "" </dev/null >/dev/null 2>&1 || pyflags="-E -s"
copy_ok() {
    [ -f "$1" ] && [ ! -L "$1" ] && [ "$(wc -c < "$1")" -le 1048576 ] &&
        "$py" $pyflags -c "import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])" "$1" </dev/null >/dev/null 2>&1
}
[ -f "$A/targets" ] || failed="; the list of files is missing"
n=0
while IFS= read -r target; do
    ok=no
    case "$target" in
        *..*|*[!A-Za-z0-9_./+-]*) ;;
        /etc/firewalld/services/*.xml|/etc/firewalld/zones/*.xml|/etc/firewalld/zones/*.xml.old) ok=yes ;;
    esac
    if [ "$ok" = no ]; then failed="$failed; $target is no firewalld file, not touched"
    elif [ -L "$A/$n" ] || [ -L "$A/left-$n" ]; then failed="$failed; the copy of $target is a link, not followed"
    elif [ -e "$A/$n" ] && ! copy_ok "$A/$n"; then
        failed="$failed; the copy of $target is no firewalld file (a plain file of at most 1 MiB, well-formed XML)"
    fi
    n=$((n + 1))
done < "$A/targets"
n=0
[ -n "$failed" ] || while IFS= read -r target; do
    if back "$n" "$target"; then :
    elif ! as_left "$n" "$target"; then theirs="$theirs $target"
    elif [ -e "$A/$n" ]; then
        if ! { cp -p "$A/$n" "$target.smtps-tmp" && mv -f "$target.smtps-tmp" "$target"; }; then
            rm -f "$target.smtps-tmp"
            failed="$failed; putting back $target failed"
        fi
    elif ! rm -f "$target"; then failed="$failed; removing $target failed"
    fi
    n=$((n + 1))
done < "$A/targets"
if [ -z "$failed" ] && [ -f "$A/state" ]; then
    s=$(cat "$A/state")
    case "$s" in
        /var/lib/smtps-iredmail/*..*|/var/lib/smtps-iredmail/*/*) failed="; $s is no state folder" ;;
        /var/lib/smtps-iredmail/?*)
            if [ -d "$s.pending" ] && [ ! -e "$s" ]; then
                mv -T "$s.pending" "$s" || failed="; putting back the state folder $s failed"
            fi ;;
        *) failed="; $s is no state folder" ;;
    esac
fi
if [ -z "$failed" ]; then firewall-cmd --reload >/dev/null 2>&1 || failed="; firewall-cmd --reload failed"; fi
if [ -n "$failed" ]; then
    mv -f "$A/token" "$A/token.failed"
    why="reverting the unconfirmed firewalld change $tok failed${failed}; its copies are kept in $A"
    printf "%s\n" "$why" > "$A/report"
    logger -t smtps-iredmail "$why" 2>/dev/null
    exit 1
fi
logger -t smtps-iredmail "no fresh login confirmed the firewalld change of $tok: reverted${theirs:+; left as they are, changed by someone else since:$theirs}" 2>/dev/null
if [ -n "$theirs" ]; then
    printf "%s\n" "an unconfirmed firewalld change ($tok) was reverted; left as they are, changed by someone else since:$theirs" > "$A/report"
    rm -f "$A/token"
    exit 0
fi
rm -rf "$A"
exit 0'
# The watcher at pid $1, armed with token $2: that pid still runs with the token in its environment (a pid can be
# reused; the environment of root's processes is readable by root alone).
watcher_alive() {
    [ "$1" -gt 0 ] 2>/dev/null && [ -n "$2" ] &&
        tr '\0' '\n' < "/proc/$1/environ" 2>/dev/null | grep -qxF "SMTPS_REVERT=$2"
}
# A revert that failed (token.failed), told in words: what failed, each file with its kept copy, and the two ways
# to settle it. It is never tried again here: putting the copies back means a firewalld reload, days later maybe,
# which would make live every edit left pending since, unjudged by the lockout guard and with nothing armed to
# revert it if SSH is cut. A person settles it, from a console.
unsettled() {
    why=$(cat "$ARM/report" 2>/dev/null || echo "reverting an unconfirmed firewalld change failed")
    files=""
    n=0
    if [ -f "$ARM/targets" ]; then
        while IFS= read -r target; do
            if [ -e "$ARM/$n" ]; then files="$files $target (as it was before: $ARM/$n);"
            else files="$files $target (there was none before);"; fi
            n=$((n + 1))
        done < "$ARM/targets"
    fi
    s=$(cat "$ARM/state" 2>/dev/null || true)
    printf '%s' "an earlier firewalld change here was never confirmed, and putting it back failed ($why). Nothing was reloaded, and no run goes on here until this is settled by hand, from a console (SSH may be cut): this tool reloads firewalld only behind its lockout guard, with a revert armed. The change's files:${files:- (the list of files is missing)} Either put it back: copy each kept file over its file (remove a file that had none before)${s:+, move $s.pending back to $s}, then run firewall-cmd --check-config and firewall-cmd --reload; or accept the change as it stands${s:+ and remove $s.pending}. Then remove $ARM."
}
# An earlier change still waiting for its confirmation: its watcher would revert files under this run. Nothing
# confirmed it, so it is reverted now, as the watcher would do a little later. If the watcher is gone (killed, or
# the host was rebooted), the change has stood since, and this very login proves SSH works with it: said as a
# warning. One that reverted but left files to someone else is reported.
pending_confirm() {
    [ -d "$ARM" ] || return 0
    [ ! -f "$ARM/token.failed" ] || fail "$(unsettled)"
    if [ ! -f "$ARM/token" ]; then
        [ ! -f "$ARM/report" ] || say "$(cat "$ARM/report")"
        rm -rf "$ARM"
        return 0
    fi
    pid=$(cat "$ARM/pid" 2>/dev/null || echo 0)
    tok=$(cat "$ARM/token")
    # Another run's change, armed moments ago (two stacks naming this host, or a rollback): its controller is about
    # to confirm it over a fresh login, which needs this lock. So wait, the lock released, until it is confirmed or
    # its watcher's time is up (at most an hour, whatever the folder says); only then put it back ourselves.
    # Said when the wait starts, and every WAIT_NOTE seconds: the controller gives up on a session silent for
    # 300 s (smtps/ssh.py, COMMAND_TIMEOUT), and a change may wait up to 600 s (confirmSeconds).
    until=$(cat "$ARM/until" 2>/dev/null || echo 0)
    case "$until" in *[!0-9]*|'') until=0 ;; esac
    now=$(date +%s)
    [ "$until" -le $((now + 3600)) ] || until=$((now + 3600))
    # By the clock: a turn of the loop may wait up to 60 s for the lock, so at most WAIT_NOTE + 61 s pass unsaid.
    WAIT_NOTE=60
    note=0
    while [ -f "$ARM/token" ] && watcher_alive "$pid" "$tok" && [ "$(date +%s)" -lt "$until" ]; do
        now=$(date +%s)
        if [ "$now" -ge "$note" ]; then
            say "waiting for another run's firewalld change ($tok) to be confirmed by its controller, or put back by its watcher, $((until - now)) s at most"
            note=$((now + WAIT_NOTE))
        fi
        flock -u 9
        sleep 1
        flock -w 60 9 || fail "another smtps-iredmail run holds this host's lock ($(cat "$LOCK" 2>/dev/null || echo unknown)); nothing was changed"
    done
    [ -d "$ARM" ] || return 0  # confirmed meanwhile, or reverted by its watcher
    if [ ! -f "$ARM/token" ] || [ "$(cat "$ARM/token")" != "$tok" ]; then pending_confirm; return 0; fi
    if watcher_alive "$pid" "$tok"; then
        # Its watcher's own revert, a moment early (its time is up): the run that armed it had the guard judge it.
        kill -TERM -"$pid" 2>/dev/null || true
        SMTPS_REVERT=$tok SMTPS_PY=$FWPY /bin/sh -c "$REVERT" smtps-revert "$ARM" 0 held </dev/null >/dev/null 2>&1 ||
            fail "$(unsettled)"
        say "an earlier firewalld change here was never confirmed: its previous configuration is back"
        [ ! -d "$ARM" ] || { say "$(cat "$ARM/report" 2>/dev/null)"; rm -rf "$ARM"; }
        return 0
    fi
    say "warning: an earlier firewalld change here ($tok) was never confirmed, and its watcher is gone (killed, or the host restarted) before it could put it back: the change stands, and this login shows SSH works with it"
    confirmed_state
    rm -rf "$ARM"
}
# A remove's state folder waits beside its place (NAME.pending) until the change is confirmed: a revert puts it
# back with the files it describes; a confirmation (or a change that stood) lets it go.
confirmed_state() {
    if [ -f "$ARM/state" ]; then
        rm -rf "$(cat "$ARM/state").pending"
        rmdir "$STATE" 2>/dev/null || true
    fi
}
# firewalld's own Python: the interpreter on firewall-cmd's first line (a distribution's platform-python, where
# python3 may not even be installed) has firewalld's library. A firewall-cmd that is a wrapper (its first line is no
# Python) leaves python3 from PATH.
FWPY=$(sed -n '1s/^#! *\([^ ]*\).*/\1/p' "$(command -v firewall-cmd 2>/dev/null || echo /dev/null)" 2>/dev/null || true)
case "${FWPY##*/}" in *python*) [ -x "$FWPY" ] || FWPY=python3 ;; *) FWPY=python3 ;; esac


pending_confirm
# zone_op permanent|runtime add|remove service|port VALUE ZONE: one change to a zone, in one layer. Its words come
# from this script or from a run's journal on this host (data): each is checked before firewall-cmd sees it.
zone_op() {
    case "$1" in permanent) zflag=--permanent ;; runtime) zflag="" ;; *) echo "zone_op: bad layer" >&2; return 2 ;; esac
    case "$2" in add|remove) ;; *) echo "zone_op: bad operation" >&2; return 2 ;; esac
    case "$3" in service|port) ;; *) echo "zone_op: bad element" >&2; return 2 ;; esac
    case "$4$5" in *[!A-Za-z0-9_./:+-]*|'') echo "zone_op: bad name" >&2; return 2 ;; esac
    firewall-cmd $zflag --zone="$5" --"$2-$3=$4" >/dev/null
}
# journal_for_run JOURNAL: a zone script's inverses, newest first, go before any earlier ones of this run.
journal_for_run() {
    [ -n "$RUN" ] && [ -d "$RUNDIR" ] && [ -n "$1" ] || return 0
    { printf '%s' "$1"; cat "$RUNDIR/journal" 2>/dev/null || true; } > "$RUNDIR/journal.new"
    mv -f "$RUNDIR/journal.new" "$RUNDIR/journal"
}


KEY=465
ENTRY='465 inet n - n - - smtpd -o syslog_name=postfix/smtps -o smtpd_tls_wrappermode=yes -o smtpd_sasl_auth_enable=yes -o smtpd_client_restrictions=permit_sasl_authenticated,reject -o content_filter=smtp-amavis:[127.0.0.1]:10026'
CONF=$(postconf -h config_directory)
MASTER="$CONF/master.cf"
# master.cf is edited on a copy (postconf -c WORK) and renamed into place: it changes in one step, never entry by
# entry, so an interrupted run leaves the complete old or the complete new file.
WORK="$CONF/.smtps-work"
S="$STATE/master"
# postfix_new_enough: `postconf -M NAME/TYPE`, with which everything here reads and edits one master.cf entry, came
# with Postfix 2.11; older ones (CentOS 7 ships 2.10) read NAME/TYPE as an unknown service. Such a Postfix is refused
# before anything changes, by its version: the compiled-in mail_version (`postconf -d`), which main.cf cannot
# override (`mail_version = 3.9.0` there changes what `postconf -h` says, not what the binary does).
# postfix_version_problem prints why this Postfix will not do (status 0), or nothing (status 1): the read-only facts
# script reports it, the scripts that change master.cf refuse with it.
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

tidy "$MASTER"
rm -rf "$WORK"
# The master.cf this run started from goes back, Postfix re-reads it if it was told to, the work copy goes, and a
# state folder this run made goes too.
undo() {
    rc=0
    rm -rf "$WORK" || rc=1
    restore "$S.before" "$MASTER" || rc=1
    # Best effort: the files are what must be as before (Postfix keeps running on what it last read).
    if [ "$RELOADED" = yes ]; then postfix reload >/dev/null 2>&1 || true; fi
    undo_state "$rc"
}
RELOADED=no
FIRST=no
edit_copy() {  # edit_copy POSTCONF-ARGS...: run postconf on the work copy
    postconf -c "$WORK" "$@"
}
start_copy() {
    mkdir -m 700 "$WORK"
    cp -p "$CONF/main.cf" "$MASTER" "$WORK/"
}
# Put the work copy in place, check it, and have Postfix read it.
install_copy() {
    mv -f "$WORK/master.cf" "$MASTER"
    rm -rf "$WORK"
    check=$(postfix check 2>&1) || fail "postfix check failed: $check"
    RELOADED=yes
    postfix reload >/dev/null 2>&1 || fail "postfix reload failed"
}

if [ ! -d "$S" ]; then
    say "master.cf: nothing of ours to remove"
    exit 0
fi
postfix_new_enough
postfix status >/dev/null 2>&1 || fail "postfix is not running: this tool does not start it (it was stopped for a reason, or it failed); start it (postfix start) and run this again"
on_failure undo
keep_for_run "$MASTER"
put "$MASTER" "$S.before"
start_copy
if [ -e "$S/orig" ] && { { [ -e "$S/applied" ] && cmp -s "$MASTER" "$S/applied"; } || cmp -s "$MASTER" "$S/orig"; }
then
    # Nobody changed master.cf since our last change (or an interrupted remove already put it back): put back the
    # file as it was found, byte for byte.
    cp -p "$S/orig" "$WORK/master.cf"
else
    # Someone changed it since: undo only our entry, and put back the entry that was there before, if any.
    [ -z "$(edit_copy -M "$KEY/inet" 2>/dev/null)" ] || edit_copy -MX "$KEY/inet"
    if [ -s "$S/entry" ]; then
        edit_copy -M "$(sed -n 1p "$S/entry")/inet=$(sed -n 2p "$S/entry")"
    fi
fi
install_copy
left_for_run "$MASTER"
on_failure ""
rm -f "$S.before"
drop_state "$S"
say "master.cf: back as found; postfix reloaded"

