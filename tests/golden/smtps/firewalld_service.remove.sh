# <prologue.sh changed as below, then firewalld_service.sh, then the lines below>
# @@ -2 +2 @@
# -# 'zone membership' on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when
# +# 'firewalld service' on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when
# @@ -21 +21 @@
# -KIND='zone membership'
# +KIND='firewalld service'
# @@ -289,6 +288,0 @@
# -[6 lines of prologue.sh: 289 to 294]
# </prologue.sh>
if [ ! -d "$S" ]; then
    say "firewalld service $NAME: nothing of ours to remove"
    exit 0
fi
on_failure undo
keep_for_run "$FILE"
keep_before
WROTE=yes
if [ -e "$S/absent" ]; then rm -f "$FILE"; else put "$S/orig" "$FILE"; fi
guarded_reload
left_for_run "$FILE"
on_failure ""
rm -f "$S.before"
settle_state
say "firewalld service $NAME: back as found; firewalld reloaded"
confirm_needed

