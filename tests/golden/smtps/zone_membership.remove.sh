# <prologue.sh as it is, then zone_membership.sh, then the lines below>
read_plan remove
if [ "$outcome" = none ]; then
    say "zone $ZONE: nothing of ours to remove"
    exit 0
fi
on_failure undo
keep_for_run "$ZFILE" "$ZFILE.old"
keep_before
if [ "$outcome" = restore ]; then
    if [ -e "$S/absent" ]; then rm -f "$ZFILE"; else put "$S/orig" "$ZFILE"; fi
    if [ -e "$S/old-orig" ]; then put "$S/old-orig" "$ZFILE.old"; else rm -f "$ZFILE.old"; fi
    zone_before=-; [ ! -e "$S.before" ] || zone_before="$S.before"
    old_before=-; [ ! -e "$S.before-old" ] || old_before="$S.before-old"
    judged=$zone_before; [ ! -e "$S/applied" ] || judged="$S/applied"
    reload_firewalld record "$ZFILE" "$judged" -- "$ZFILE" "$zone_before" "$ZFILE.old" "$old_before"
else
    changes
    journal_for_run "$JOURNAL"
fi
left_for_run "$ZFILE" "$ZFILE.old"
on_failure ""
rm -f "$S.before" "$S.before-old"
settle_state
say "zone $ZONE: back as found"
confirm_needed

