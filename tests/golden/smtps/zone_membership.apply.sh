# <prologue.sh changed as below, then zone_membership.sh, then the lines below>
# @@ -2 +2 @@
# -# 'zone membership' on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when
# +# 'zone membership' on mail1: apply. Rendered by smtps-iredmail: every value below was quoted when
# @@ -302,98 +301,0 @@
# -[98 lines of prologue.sh: 302 to 399]
# @@ -401 +302,0 @@
# -
# </prologue.sh>
if [ "$POLICY" = keep ] && has permanent port; then
    if ! has runtime port; then
        keep_for_run "$ZFILE" "$ZFILE.old"
        change runtime add port "$PORT"
        journal_for_run "$JOURNAL"
        say "zone $ZONE: $PORT open by port in the permanent configuration only; opened at runtime too"
    else
        say "zone $ZONE: $PORT already open by port; kept as found"
    fi
    exit 0
fi
need_perm=yes; need_run=yes; drop_port=no
has permanent service && need_perm=no
has runtime service && need_run=no
if [ "$POLICY" = replace ] && { has permanent port || has runtime port; }; then
    drop_port=yes
fi
if [ "$need_perm$need_run$drop_port" = nonono ]; then
    if [ -d "$S" ] && [ ! -e "$S/applied" ] && [ -e "$ZFILE" ]; then put "$ZFILE" "$S/applied"; fi
    say "zone $ZONE: service $SERVICE up to date"
    exit 0
fi
on_failure undo
keep_for_run "$ZFILE" "$ZFILE.old"
if [ ! -d "$S" ]; then
    FIRST=yes
    begin_state "$S"
    if [ -e "$ZFILE" ]; then cp -p "$ZFILE" "$S.new/orig"; else : > "$S.new/absent"; fi
    if [ -e "$ZFILE.old" ]; then cp -p "$ZFILE.old" "$S.new/old-orig"; else : > "$S.new/old-absent"; fi
    if has permanent port; then : > "$S.new/had-port"; fi
    commit_state "$S"
elif [ -e "$ZFILE" ] && changed_since "$S" "$ZFILE" "$S.before"; then
    rm -f "$S/orig" "$S/absent" "$S/old-orig" "$S/old-absent"
    if [ "$need_perm" = yes ] && { [ ! -e "$S/had-port" ] || has permanent port; }; then
        put "$ZFILE" "$S/orig"
        if [ -e "$ZFILE.old" ]; then put "$ZFILE.old" "$S/old-orig"; else : > "$S/old-absent"; fi
    fi
fi
keep_before
[ "$need_perm" = no ] || change permanent add service "$SERVICE"
[ "$need_run" = no ] || change runtime add service "$SERVICE"
if [ "$drop_port" = yes ]; then
    ! has permanent port || change permanent remove port "$PORT"
    ! has runtime port || change runtime remove port "$PORT"
fi
[ ! -e "$ZFILE" ] || put "$ZFILE" "$S/applied"
journal_for_run "$JOURNAL"
left_for_run "$ZFILE" "$ZFILE.old"
on_failure ""
rm -f "$S.before" "$S.before-old"
say "zone $ZONE: service $SERVICE added (permanent and runtime)"

