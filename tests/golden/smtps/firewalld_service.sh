
NAME=smtps
FILE="/etc/firewalld/services/$NAME.xml"
BUILTIN="/usr/lib/firewalld/services/$NAME.xml"
S="$STATE/service-$NAME"
tidy "$FILE"
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
undo() {
    rc=0
    if [ -e "$S.before" ]; then restore "$S.before" "$FILE" || rc=1
    elif [ "$WROTE" = yes ]; then rm -f "$FILE" || rc=1; fi
    reload_back "$rc" || true
    undo_state "$rc"
}
FIRST=no
WROTE=no
keep_before() {  # this run's starting point of the file (none: the file did not exist)
    rm -f "$S.before"
    [ ! -e "$FILE" ] || put "$FILE" "$S.before"
}
before_or_none() { if [ -e "$S.before" ]; then echo "$S.before"; else echo -; fi; }
guarded_reload() { reload_firewalld record "$FILE" "$(before_or_none)" -- "$FILE" "$(before_or_none)"; }

