#!/bin/sh
# 'zone membership' on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when
set -eu
umask 022
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cd /
py() {
    py_bin=$1
    shift
    if "$py_bin" -I -c '' </dev/null >/dev/null 2>&1; then "$py_bin" -I "$@"; else "$py_bin" -E -s "$@"; fi
}
firewalld_python() {
    fw_py=$(sed -n '1s/^#! *\([^ ]*\).*/\1/p' "$(command -v firewall-cmd 2>/dev/null || echo /dev/null)" 2>/dev/null || true)
    case "${fw_py##*/}" in *python*) if [ -x "$fw_py" ]; then echo "$fw_py"; return 0; fi ;; esac
    echo python3
}
host_python() { if command -v python3 >/dev/null 2>&1; then echo python3; else firewalld_python; fi; }

trap '' PIPE
HOST=mail1
KIND='zone membership'
STATE=/var/lib/smtps-iredmail
say() { printf 'smtps: %s: %s\n' "$HOST" "$*" || true; }
RUN=''
RUNS=/run/smtps-iredmail/runs
RUNDIR="$RUNS/$RUN"
KEPT=""
keep_for_run() {  # keep_for_run FILE...
    [ -n "$RUN" ] || return 0
    KEPT=yes
    if [ ! -d "$RUNDIR" ]; then
        mkdir -p -m 700 "$RUNS"
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
entry_sum() {
    [ -e "$1" ] || [ -L "$1" ] || { echo absent; return 0; }
    (cd "${1%/*}" && find "${1##*/}" -printf '%y %m %p %l\n' && find "${1##*/}" -type f -exec sha256sum {} +) |
        LC_ALL=C sort
}
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
left_state() {
    [ -n "$KEPT" ] && [ -n "${S:-}" ] && [ -d "$RUNDIR" ] || return 0
    entry_sum "$S" > "$RUNDIR/left-state-${S##*/}" || rm -f "$RUNDIR/left-state-${S##*/}"
}
fail() { printf 'smtps: %s: %s\n' "$HOST" "$*" >&2 || true; exit 1; }
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
put() { { cp -p "$1" "$2.smtps-tmp" && mv -f "$2.smtps-tmp" "$2"; } || { rm -f "$2.smtps-tmp"; return 1; }; }
put_back() { cmp -s "$1" "$2" || put "$1" "$2"; }
restore() { if [ -e "$1" ]; then put_back "$1" "$2" && rm -f "$1"; fi; }
tidy() {  # tidy FILE... : remove FILE.smtps-tmp for each
    for f in "$@"; do rm -f "$f.smtps-tmp"; done
    [ ! -d "$STATE" ] || rm -rf "$STATE"/*.new "$STATE"/*.gone
}
begin_state() {  # begin_state DIR: an empty DIR.new to fill; commit_state DIR puts it in place
    mkdir -p "$STATE" && chmod 700 "$STATE"
    rm -rf "$1.new" && mkdir "$1.new"
}
commit_state() { mv "$1.new" "$1"; }
POSTFIX_RELOADED=no
RELOADED=no
reload_postfix() {
    check=$(postfix check 2>&1) || fail "postfix check failed${1:+ on $1}: $check"
    POSTFIX_RELOADED=yes
    postfix reload >/dev/null 2>&1 || fail "postfix reload failed"
}
reload_back() {
    if [ "$POSTFIX_RELOADED" = yes ]; then postfix reload >/dev/null 2>&1 || true; fi
    if [ "$RELOADED" = yes ]; then fw_reload_now 2>/dev/null || return 1; fi
    [ "$1" -ne 0 ] || [ -z "${ARMED:-}" ] || disarm
}
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
changed_since() {
    for known in "$1/applied" "$1/orig"; do
        if [ -e "$known" ] && cmp -s "$2" "$known"; then return 1; fi
        if [ -e "$known" ] && [ -e "$3" ] && cmp -s "$3" "$known"; then return 1; fi
    done
    return 0
}
UNDO=""
on_failure() { UNDO="$1"; }
finish() {
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
ARM=/run/smtps-iredmail/confirm
ARMED=""
WATCHER=0
REVERT='sleep "$2"
A=$1
mine() { [ -n "${SMTPS_REVERT:-}" ] && [ -f "$A/token" ] && [ "$(cat "$A/token")" = "$SMTPS_REVERT" ]; }
if [ "${3:-}" != held ]; then
    exec 9>>/run/smtps-iredmail/lock
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
watcher_alive() {
    [ "$1" -gt 0 ] 2>/dev/null && [ -n "$2" ] &&
        tr '\0' '\n' < "/proc/$1/environ" 2>/dev/null | grep -qxF "SMTPS_REVERT=$2"
}
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
    until=$(cat "$ARM/until" 2>/dev/null || echo 0)
    case "$until" in *[!0-9]*|'') until=0 ;; esac
    now=$(date +%s)
    [ "$until" -le $((now + 3600)) ] || until=$((now + 3600))
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
confirmed_state() {
    if [ -f "$ARM/state" ]; then
        rm -rf "$(cat "$ARM/state").pending"
        rmdir "$STATE" 2>/dev/null || true
    fi
}
FWPY=$(firewalld_python)

zone_probe() {  # zone_probe ZONE SERVICE PORT [apply|remove POLICY STATE FILE]: the zone's facts, then its plan
    "$FWPY" -I - "$@" <<'SMTPS_ZONE_PROBE'
<smtps/zone_probe.py, as it is>
SMTPS_ZONE_PROBE
}


pending_confirm
FWD=""
if command -v dbus-send >/dev/null 2>&1; then FWD=yes; fi
fwd() {
    fwd_path=$1
    fwd_method=$2
    shift 2
    fwd_out=$(dbus-send --system --print-reply --reply-timeout=2147483647 --dest=org.fedoraproject.FirewallD1 \
        "/org/fedoraproject/FirewallD1$fwd_path" "org.fedoraproject.FirewallD1.$fwd_method" "$@" 2>&1) || {
        printf 'Error: %s\n' "${fwd_out#Error *: }" >&2
        return 1
    }
    printf '%s\n' "$fwd_out"
}
fw_check_config() {
    if [ -n "$FWD" ]; then fwd "" checkPermanentConfig 2>&1 >/dev/null; else firewall-cmd --check-config 2>&1; fi
}
fw_reload_now() { if [ -n "$FWD" ]; then fwd "" reload >/dev/null; else firewall-cmd --reload >/dev/null; fi; }
fw_active_zones() {
    if [ -z "$FWD" ]; then firewall-cmd --get-active-zones; return; fi
    fwd "" zone.getActiveZones | awk '
        /dict entry\(/ { depth++; name = 1; next }
        /^ *\)$/ { if (depth == 2 && kind != "") print "  " kind ": " names; if (depth == 2) { kind = ""; names = "" }
                   depth--; next }
        /^ *string "/ {
            value = $0; sub(/^ *string "/, "", value); sub(/"$/, "", value)
            if (name && depth == 1) print value
            else if (name && depth == 2) kind = value
            else if (depth == 2) names = names (names == "" ? "" : " ") value
            name = 0
        }'
}
zone_op() {
    case "$1" in permanent) zflag=--permanent ;; runtime) zflag="" ;; *) echo "zone_op: bad layer" >&2; return 2 ;; esac
    case "$2" in add|remove) ;; *) echo "zone_op: bad operation" >&2; return 2 ;; esac
    case "$3" in service|port) ;; *) echo "zone_op: bad element" >&2; return 2 ;; esac
    case "$4$5" in *[!A-Za-z0-9_./:+-]*|'') echo "zone_op: bad name" >&2; return 2 ;; esac
    if [ -z "$FWD" ]; then firewall-cmd $zflag --zone="$5" --"$2-$3=$4" >/dev/null; return; fi
    zop_method=$2Service
    set -- "$1" "$2" "$3" "$4" "$5" "string:$4"
    if [ "$3" = port ]; then
        case "$4" in */*) ;; *) echo "zone_op: bad port" >&2; return 2 ;; esac
        zop_method=$2Port
        set -- "$1" "$2" "$3" "$4" "$5" "string:${4%%/*}" "string:${4#*/}"
    fi
    if [ "$1" = permanent ]; then
        zop_path=$(fwd /config config.getZoneByName "string:$5") || return 1
        zop_path=$(printf '%s\n' "$zop_path" | sed -n 's/^ *object path "\/org\/fedoraproject\/FirewallD1\(.*\)"$/\1/p')
        [ -n "$zop_path" ] || { echo "Error: INVALID_ZONE: $5" >&2; return 1; }
        shift 5
        zop_out=$(fwd "$zop_path" "config.zone.$zop_method" "$@" 2>&1 >/dev/null) && return 0
    else
        zop_zone=$5
        shift 5
        [ "$zop_method" = "${zop_method#add}" ] || set -- "$@" int32:0  # added for good: no timeout
        zop_out=$(fwd "" "zone.$zop_method" "string:$zop_zone" "$@" 2>&1 >/dev/null) && return 0
    fi
    case "$zop_out" in *ALREADY_ENABLED*|*NOT_ENABLED*) return 0 ;; esac
    printf '%s\n' "$zop_out" >&2
    return 1
}
journal_for_run() {
    [ -n "$RUN" ] && [ -d "$RUNDIR" ] && [ -n "$1" ] || return 0
    { printf '%s' "$1"; cat "$RUNDIR/journal" 2>/dev/null || true; } > "$RUNDIR/journal.new"
    mv -f "$RUNDIR/journal.new" "$RUNDIR/journal"
}

CONFIRM=60
settle_state() {
    if [ -n "$ARMED" ]; then
        printf '%s\n' "$S" > "$ARM/state"
        rm -rf "$S.pending" && mv "$S" "$S.pending"
    else
        drop_state "$S"
    fi
}
arm() {
    [ ! -e "$ARM" ] || fail "$ARM is still there: an earlier firewalld change is unsettled; nothing was reloaded"
    rm -rf "$ARM.new" && mkdir -m 700 "$ARM.new"
    n=0
    while [ "$#" -ge 2 ]; do
        printf '%s\n' "$1" >> "$ARM.new/targets"
        if [ "$2" != - ]; then cp -p "$2" "$ARM.new/$n"; fi
        if [ -e "$1" ]; then cp -p "$1" "$ARM.new/left-$n"; fi
        n=$((n + 1))
        shift 2
    done
    if [ -n "$RUN" ] && [ -d "$RUNDIR" ] && [ ! -e "$RUNDIR/reloaded" ]; then
        fw_active_zones > "$RUNDIR/bindings" 2>/dev/null || : > "$RUNDIR/bindings"
        : > "$RUNDIR/reloaded"
    fi
    ARMED=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
    printf '%s\n' "$ARMED" > "$ARM.new/token"
    printf '%s\n' "$(($(date +%s) + CONFIRM))" > "$ARM.new/until"
    SMTPS_REVERT=$ARMED SMTPS_PY=$FWPY setsid /bin/sh -c "$REVERT" smtps-revert "$ARM" "$CONFIRM" </dev/null >/dev/null 2>&1 9>&- &
    WATCHER=$!
    printf '%s\n' "$WATCHER" > "$ARM.new/pid"
    mv -T "$ARM.new" "$ARM"
}
bindings_of() {
    zone=""
    while IFS= read -r line; do
        case "$line" in
            " "*"interfaces:"*) kind=interface; names=${line#*interfaces:} ;;
            " "*"sources:"*) kind=source; names=${line#*sources:} ;;
            " "*) continue ;;
            *) zone=${line%% *}; continue ;;  # newer firewalld adds " (default)"
        esac
        set -f
        for name in $names; do printf '%s %s %s\n' "$zone" "$kind" "$name"; done
        set +f
    done < "$1"
}
fw_reload() {
    fw_reload_now || return 1
    if [ -n "$RUN" ] && [ -f "$RUNDIR/bindings" ] && [ ! -e "$RUNDIR/dropped" ]; then
        fw_active_zones > "$RUNDIR/bindings-after" 2>/dev/null || : > "$RUNDIR/bindings-after"
        bindings_of "$RUNDIR/bindings-after" > "$RUNDIR/bound-after"
        bindings_of "$RUNDIR/bindings" | grep -vxF -f "$RUNDIR/bound-after" > "$RUNDIR/dropped.new" || true
        mv -f "$RUNDIR/dropped.new" "$RUNDIR/dropped"
    fi
}
reload_firewalld() {
    how=$1
    shift
    before_dashes guard_reload "$@"
    while [ "$1" != -- ]; do shift; done
    shift
    check=$(fw_check_config) || fail "firewall-cmd --check-config failed: $check"
    arm "$@"
    RELOADED=yes
    if [ "$how" = record ]; then fw_reload || fail "firewall-cmd --reload failed"
    else fw_reload_now || fail "firewall-cmd --reload failed"; fi
}
before_dashes() {
    run_cmd=$1
    shift
    count=0
    for arg in "$@"; do
        [ "$arg" != -- ] || break
        count=$((count + 1))
    done
    rest=$(($# - count))
    i=0
    while [ "$i" -lt "$count" ]; do
        set -- "$@" "$1"
        shift
        i=$((i + 1))
    done
    shift "$rest"
    "$run_cmd" "$@"
}
disarm() {
    [ -n "$ARMED" ] || return 0
    rm -rf "$ARM" "$ARM.new"
    if watcher_alive "${WATCHER:-0}" "$ARMED"; then kill -TERM -"$WATCHER" 2>/dev/null || true; fi
    ARMED=""
}
confirm_needed() { [ -z "$ARMED" ] || printf 'smtps-confirm=%s\n' "$ARMED"; }
lockout_guard() {
    "$FWPY" -I - --pending=refuse "$@" <<'SMTPS_LOCKOUT_GUARD'
<smtps/lockout_guard.py, as it is>
SMTPS_LOCKOUT_GUARD
}
guard_reload() { why=$(lockout_guard "$@" 2>&1) || fail "$why"; }

