
NAME=smtps
FILE="/etc/firewalld/services/$NAME.xml"
# firewalld's own definition of a service of this name, if it has one: our file in /etc would override it.
BUILTIN="/usr/lib/firewalld/services/$NAME.xml"
S="$STATE/service-$NAME"
tidy "$FILE"
# firewalld_running: what `firewall-cmd --state` answers (firewalld is on D-Bus and its state is RUNNING), asked over
# D-Bus with dbus-send where it is installed: a few milliseconds instead of firewall-cmd's Python start (about 0.2 s
# of CPU, and this is asked up to twice a run). The name's owner is asked first, of the bus itself, so the question
# never starts a stopped firewalld by D-Bus activation: a firewalld that is stopped was stopped for a reason.
firewalld_running() {
    if command -v dbus-send >/dev/null 2>&1; then
        dbus-send --system --print-reply=literal --dest=org.freedesktop.DBus /org/freedesktop/DBus \
            org.freedesktop.DBus.NameHasOwner string:org.fedoraproject.FirewallD1 2>/dev/null | grep -qw true || return 1
        dbus-send --system --print-reply=literal --dest=org.fedoraproject.FirewallD1 /org/fedoraproject/FirewallD1 \
            org.freedesktop.DBus.Properties.Get string:org.fedoraproject.FirewallD1 string:state 2>/dev/null |
            grep -qw RUNNING
    else
        firewall-cmd --state >/dev/null 2>&1
    fi
}

firewalld_running || fail "firewalld is not running: start it (SMTPS needs the runtime firewall too)"
# The file this run started from goes back (or goes, if there was none and this run wrote one), firewalld re-reads
# it if it was told to, the watcher is stopped once all that worked, and a state folder this run made goes too.
undo() {
    rc=0
    if [ -e "$S.before" ]; then restore "$S.before" "$FILE" || rc=1
    elif [ "$WROTE" = yes ]; then rm -f "$FILE" || rc=1; fi
    # The files are what must be as before: a failed reload of them is the armed watcher's to make again.
    reload_back "$rc" || true
    undo_state "$rc"
}
RELOADED=no
FIRST=no
WROTE=no
keep_before() {  # this run's starting point of the file (none: the file did not exist)
    rm -f "$S.before"
    [ ! -e "$FILE" ] || put "$FILE" "$S.before"
}
before_or_none() { if [ -e "$S.before" ]; then echo "$S.before"; else echo -; fi; }
# A new or changed service file reaches the running firewall only by a reload (reload_firewalld: guarded, checked,
# armed).
guarded_reload() { reload_firewalld record "$FILE" "$(before_or_none)" -- "$FILE" "$(before_or_none)"; }

