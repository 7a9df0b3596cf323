
ZONE=iredmail
SERVICE=smtps
POLICY=keep
PORT=465/tcp
ZFILE="/etc/firewalld/zones/$ZONE.xml"
S="$STATE/zone-$ZONE"
tidy "$ZFILE" "$ZFILE.old"
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
changes() {
    while read -r layer op what value; do
        [ -z "$layer" ] || change "$layer" "$op" "$what" "$value"
    done <<SMTPS_CHANGES
$CHANGES
SMTPS_CHANGES
}
FIRST=no
keep_before() {  # this run's starting point of the zone file and its .old copy
    rm -f "$S.before" "$S.before-old"
    [ ! -e "$ZFILE" ] || put "$ZFILE" "$S.before"
    [ ! -e "$ZFILE.old" ] || put "$ZFILE.old" "$S.before-old"
}
read_plan() {
    PLAN=$(zone_probe "$ZONE" "$SERVICE" "$PORT" "$1" "$POLICY" "$S" "$ZFILE" 2>&1) ||
        fail "cannot read firewalld zone $ZONE: $PLAN"
    refuse="" outcome="" record="" found="" had_port="" CHANGES=""
    while IFS= read -r line; do
        case "$line" in
            plan.refuse=*) refuse=${line#*=} ;;
            plan.outcome=*) outcome=${line#*=} ;;
            plan.record=*) record=${line#*=} ;;
            plan.found=*) found=${line#*=} ;;
            plan.had_port=*) had_port=${line#*=} ;;
            plan.change=*) CHANGES="$CHANGES${line#*=}
" ;;
        esac
    done <<SMTPS_PLAN
$PLAN
SMTPS_PLAN
    [ "$refuse" != stopped ] || fail "firewalld is not running: this tool does not start it (it was stopped for a reason, or it failed); start it (systemctl start firewalld) and run this again"
    [ "$refuse" != missing ] || fail "firewalld zone $ZONE does not exist (the zone setting names the zone that gets the service)"
    [ -n "$outcome" ] || fail "cannot read firewalld zone $ZONE: $PLAN"
}

