
ZONE=iredmail
SERVICE=smtps
POLICY=keep
PORT=465/tcp
ZFILE="/etc/firewalld/zones/$ZONE.xml"
S="$STATE/zone-$ZONE"
tidy "$ZFILE" "$ZFILE.old"
FACTS=$(zone_probe "$ZONE" "$SERVICE" "$PORT" 2>&1) || fail "cannot read firewalld zone $ZONE: $FACTS"
fact() { printf '%s\n' "$FACTS" | grep -qx "$1"; }
has() { fact "zone.$1.$2=yes"; }  # has permanent|runtime service|port
fact firewalld=running || fail "firewalld is not running: this tool does not start it (it was stopped for a reason, or it failed); start it (systemctl start firewalld) and run this again"
fact zone=present || fail "firewalld zone $ZONE does not exist (the zone setting names the zone that gets the service)"
JOURNAL=""
change() {  # change permanent|runtime add|remove service|port VALUE
    zone_op "$1" "$2" "$3" "$4" "$ZONE"
    case "$2" in add) inverse=remove ;; *) inverse=add ;; esac
    JOURNAL="$1 $inverse $3 $4 $ZONE
$JOURNAL"
}
undo() {
    rc=0
    while read -r layer op what value zone; do
        [ -z "$layer" ] || zone_op "$layer" "$op" "$what" "$value" "$zone" 2>/dev/null || rc=1
    done <<SMTPS_JOURNAL
$JOURNAL
SMTPS_JOURNAL
    restore "$S.before" "$ZFILE" || rc=1
    restore "$S.before-old" "$ZFILE.old" || rc=1
    reload_back "$rc" || true
    undo_state "$rc"
}
RELOADED=no
FIRST=no
keep_before() {  # this run's starting point of the zone file and its .old copy
    rm -f "$S.before" "$S.before-old"
    [ ! -e "$ZFILE" ] || put "$ZFILE" "$S.before"
    [ ! -e "$ZFILE.old" ] || put "$ZFILE.old" "$S.before-old"
}

