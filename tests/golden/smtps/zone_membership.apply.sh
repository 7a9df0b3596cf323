# <prologue.sh changed as below, then zone_membership.sh, then the lines below>
# @@ -2 +2 @@
# -# 'zone membership' on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when
# +# 'zone membership' on mail1: apply. Rendered by smtps-iredmail: every value below was quoted when
# @@ -363,98 +362,0 @@
# -[98 lines of prologue.sh: 363 to 460]
# @@ -462 +363,0 @@
# -
# </prologue.sh>
read_plan apply
case "$outcome" in
kept)
    say "zone $ZONE: $PORT already open by port; kept as found"
    exit 0 ;;
runtime)
    keep_for_run "$ZFILE" "$ZFILE.old"
    changes
    journal_for_run "$JOURNAL"
    say "zone $ZONE: $PORT open by port in the permanent configuration only; opened at runtime too"
    exit 0 ;;
current)
    [ "$record" = no ] || put "$ZFILE" "$S/applied"
    say "zone $ZONE: service $SERVICE up to date"
    exit 0 ;;
esac
on_failure undo
keep_for_run "$ZFILE" "$ZFILE.old"
case "$found" in
first)
    FIRST=yes
    begin_state "$S"
    if [ -e "$ZFILE" ]; then cp -p "$ZFILE" "$S.new/orig"; else : > "$S.new/absent"; fi
    if [ -e "$ZFILE.old" ]; then cp -p "$ZFILE.old" "$S.new/old-orig"; else : > "$S.new/old-absent"; fi
    if [ "$had_port" = yes ]; then : > "$S.new/had-port"; fi
    commit_state "$S" ;;
refound|forget)
    rm -f "$S/orig" "$S/absent" "$S/old-orig" "$S/old-absent"
    if [ "$found" = refound ]; then
        put "$ZFILE" "$S/orig"
        if [ -e "$ZFILE.old" ]; then put "$ZFILE.old" "$S/old-orig"; else : > "$S/old-absent"; fi
    fi ;;
esac
keep_before
changes
[ ! -e "$ZFILE" ] || put "$ZFILE" "$S/applied"
journal_for_run "$JOURNAL"
left_for_run "$ZFILE" "$ZFILE.old"
on_failure ""
rm -f "$S.before" "$S.before-old"
say "zone $ZONE: service $SERVICE added (permanent and runtime)"

