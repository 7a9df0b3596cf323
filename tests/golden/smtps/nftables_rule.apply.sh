# <prologue.sh changed as below, then nftables_rule.sh, then the lines below>
# @@ -2 +2 @@
# -# 'zone membership' on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when
# +# 'nftables rule' on mail1: apply. Rendered by smtps-iredmail: every value below was quoted when
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
fact live.chain=present || fail "there is no $WHERE in the live ruleset: this tool never loads $CONF (it begins with flush ruleset, which would also drop fail2ban's table); load the host's firewall as it does at boot (systemctl restart nftables) and run this again"
fact file.chain=present || fail "$CONF has no $WHERE (the nftFamily, nftTable and nftChain settings name the chain that gets the rule)"
need_live=yes
need_file=yes
fact live.rule=yes && need_live=no
fact file.rule=yes && need_file=no
if [ "$POLICY" = keep ]; then
    fact live.other=yes && need_live=no
    fact file.other=yes && need_file=no
fi
if [ "$need_live$need_file" = nono ]; then
    if [ -d "$S" ] && [ ! -e "$S/applied" ]; then put "$CONF" "$S/applied"; fi
    if fact live.rule=yes || fact file.rule=yes; then
        say "$WHERE: 465 accepted (live and in $CONF): up to date"
    else
        say "$WHERE: 465 already accepted by another rule (live and in $CONF): kept as found"
    fi
    exit 0
fi
on_failure undo
keep_for_run "$CONF"
if [ ! -d "$S" ]; then
    FIRST=yes
    begin_state "$S"
    cp -p "$CONF" "$S.new/orig"
    commit_state "$S"
elif changed_since "$S" "$CONF" "$S.before"; then
    rm -f "$S/orig"
    if [ "$need_file" = yes ]; then put "$CONF" "$S/orig"; fi
fi
put "$CONF" "$S.before"
[ "$need_file" = no ] || edit_conf with-rule
if [ "$need_live" = yes ]; then
    ADDED=yes
    why=$(nftrule add-live 2>&1) || fail "cannot add the rule to the live $WHERE: $why"
fi
put "$CONF" "$S/applied"
left_for_run "$CONF"
[ "$need_live" = no ] || journal_for_run "nft delete $FAMILY $TABLE $CHAIN
"
on_failure ""
rm -f "$S.before"
say "$WHERE: 465 accepted by this tool's rule (live, and in $CONF before the chain's final drop)"

