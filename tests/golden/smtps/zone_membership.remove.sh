# <prologue.sh as it is, then zone_membership.sh, then the lines below>
if [ ! -d "$S" ]; then
    say "zone $ZONE: nothing of ours to remove"
    exit 0
fi
# The zone file as we left it, or already as it was found (a remove that was interrupted before its reload):
# either way it goes back byte for byte and firewalld reads it again. Editing it through firewalld instead would
# have firewalld write out its own, older, idea of the zone.
as_found=no
if [ -e "$S/absent" ] && [ ! -e "$ZFILE" ]; then as_found=yes; fi
if [ -e "$S/orig" ] && [ -e "$ZFILE" ] && cmp -s "$ZFILE" "$S/orig"; then as_found=yes; fi
if { [ -e "$S/orig" ] || [ -e "$S/absent" ]; } && { [ "$as_found" = yes ] ||
        { [ -e "$S/applied" ] && [ -e "$ZFILE" ] && cmp -s "$ZFILE" "$S/applied"; }; }; then
    # Nobody changed the zone file since: put it back byte for byte (firewalld rewrote it in its own format when
    # the service was added), then let firewalld read it again: judged by the lockout guard on the file as it will
    # be, and armed to revert by itself unless a fresh login confirms it.
    on_failure undo
    keep_for_run "$ZFILE" "$ZFILE.old"
    keep_before
    if [ -e "$S/absent" ]; then rm -f "$ZFILE"; else put "$S/orig" "$ZFILE"; fi
    if [ -e "$S/old-orig" ]; then put "$S/old-orig" "$ZFILE.old"; else rm -f "$ZFILE.old"; fi
    zone_before=-; [ ! -e "$S.before" ] || zone_before="$S.before"
    old_before=-; [ ! -e "$S.before-old" ] || old_before="$S.before-old"
    # The guard compares the zone with the running one as this tool left it: a remove interrupted before its
    # reload has put the file back already, and only this tool's own service is then pending.
    judged=$zone_before; [ ! -e "$S/applied" ] || judged="$S/applied"
    reload_firewalld record "$ZFILE" "$judged" -- "$ZFILE" "$zone_before" "$ZFILE.old" "$old_before"
else
    # Someone changed the zone since: take out only the service, after putting back the port if we took it out.
    on_failure undo
    keep_for_run "$ZFILE" "$ZFILE.old"
    keep_before
    if [ -e "$S/had-port" ]; then
        has permanent port || change permanent add port "$PORT"
        has runtime port || change runtime add port "$PORT"
    fi
    ! has permanent service || change permanent remove service "$SERVICE"
    ! has runtime service || change runtime remove service "$SERVICE"
    journal_for_run "$JOURNAL"
fi
left_for_run "$ZFILE" "$ZFILE.old"
on_failure ""
rm -f "$S.before" "$S.before-old"
settle_state
say "zone $ZONE: back as found"
confirm_needed

