# <prologue.sh changed as below, then master_service.sh, then the lines below>
# @@ -2 +2 @@
# -# 'zone membership' on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when
# +# 'master.cf service' on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when
# @@ -21 +21 @@
# -KIND='zone membership'
# +KIND='master.cf service'
# @@ -289,6 +288,0 @@
# -[6 lines of prologue.sh: 289 to 294]
# @@ -363,98 +356,0 @@
# -[98 lines of prologue.sh: 363 to 460]
# @@ -462 +357,0 @@
# -
# </prologue.sh>
if [ ! -d "$S" ]; then
    say "master.cf: nothing of ours to remove"
    exit 0
fi
postfix_new_enough
postfix_running || fail "postfix is not running: this tool does not start it (it was stopped for a reason, or it failed); start it (postfix start) and run this again"
on_failure undo
keep_for_run "$MASTER"
put "$MASTER" "$S.before"
start_copy
if [ -e "$S/orig" ] && { { [ -e "$S/applied" ] && cmp -s "$MASTER" "$S/applied"; } || cmp -s "$MASTER" "$S/orig"; }
then
    cp -p "$S/orig" "$WORK/master.cf"
else
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

