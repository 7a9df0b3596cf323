# <prologue.sh changed as below, then nftables_rule.sh, then the lines below>
# @@ -2 +2 @@
# -# 'zone membership' on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when
# +# 'nftables rule' on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when
# @@ -21 +21 @@
# -KIND='zone membership'
# +KIND='nftables rule'
# @@ -289,6 +288,0 @@
# -[6 lines of prologue.sh: 289 to 294]
# @@ -363,98 +356,0 @@
# -[98 lines of prologue.sh: 363 to 460]
# @@ -462 +357,0 @@
# -
# </prologue.sh>
if [ ! -d "$S" ]; then
    say "$WHERE: nothing of ours to remove"
    exit 0
fi
set -- ${SSH_CONNECTION:-}
[ "$#" -eq 4 ] || fail "SSH_CONNECTION is not set, so the port this connection came in on is unknown (run over SSH; with sudo, keep SSH_CONNECTION); nothing was changed"
[ "$4" != 465 ] || fail "this SSH connection came in on port 465: taking out the rule accepting 465 would cut it; nothing was changed"
on_failure undo
keep_for_run "$CONF"
[ ! -e "$CONF" ] || put "$CONF" "$S.before"
if fact live.rule=yes; then
    DELETED=yes
    why=$(nftrule delete-live 2>&1) || fail "cannot delete the rule from the live $WHERE: $why"
fi
if [ -e "$S/orig" ] && { { [ -e "$S/applied" ] && cmp -s "$CONF" "$S/applied"; } || cmp -s "$CONF" "$S/orig"; }; then
    put_back "$S/orig" "$CONF"
elif fact file.rule=yes; then
    edit_conf without-rule
fi
left_for_run "$CONF"
[ "$DELETED" = no ] || journal_for_run "nft add $FAMILY $TABLE $CHAIN
"
on_failure ""
rm -f "$S.before"
drop_state "$S"
say "$WHERE: this tool's rule removed (live and from $CONF)"

