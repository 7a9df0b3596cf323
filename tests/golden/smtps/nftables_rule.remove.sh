# <prologue.sh changed as below, then nftables_rule.sh, then the lines below>
# @@ -2 +2 @@
# -# 'zone membership' on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when
# +# 'nftables rule' on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when
# @@ -24 +24 @@
# -KIND='zone membership'
# +KIND='nftables rule'
# @@ -373,6 +372,0 @@
# -[6 lines of prologue.sh: 373 to 378]
# @@ -397,126 +390,0 @@
# -[126 lines of prologue.sh: 397 to 522]
# @@ -524 +391,0 @@
# -
# </prologue.sh>
if [ ! -d "$S" ]; then
    say "$WHERE: nothing of ours to remove"
    exit 0
fi
# The lockout guard, for this change: the rule accepts 465/tcp and nothing else, so taking it out can cut only a
# connection that came in on 465. Judged on this very connection (sshd's port as the client reached it); where that
# cannot be told, nothing is changed.
set -- ${SSH_CONNECTION:-}
[ "$#" -eq 4 ] || fail "SSH_CONNECTION is not set, so the port this connection came in on is unknown (run over SSH; with sudo, keep SSH_CONNECTION); nothing was changed"
[ "$4" != 465 ] || fail "this SSH connection came in on port 465: taking out the rule accepting 465 would cut it; nothing was changed"
on_failure undo
keep_for_run "$CONF"
# (Someone may have taken the file away: then there is nothing of ours in it to take out.)
[ ! -e "$CONF" ] || put "$CONF" "$S.before"
if fact live.rule=yes; then
    DELETED=yes
    why=$(nftrule delete-live 2>&1) || fail "cannot delete the rule from the live $WHERE: $why"
fi
if [ -e "$S/orig" ] && { { [ -e "$S/applied" ] && cmp -s "$CONF" "$S/applied"; } || cmp -s "$CONF" "$S/orig"; }; then
    # Nobody changed the file since this tool's last change: it goes back byte for byte.
    put_back "$S/orig" "$CONF"
elif fact file.rule=yes; then
    # Someone changed it since: only this tool's line comes out.
    edit_conf without-rule
fi
left_for_run "$CONF"
[ "$DELETED" = no ] || journal_for_run "nft add $FAMILY $TABLE $CHAIN
"
on_failure ""
rm -f "$S.before"
drop_state "$S"
say "$WHERE: this tool's rule removed (live and from $CONF)"

