
FAMILY=inet
TABLE=filter
CHAIN=input
POLICY=keep
CONF=/etc/nftables.conf
WHERE="nftables chain $FAMILY $TABLE $CHAIN"
S="$STATE/nftables-$FAMILY-$TABLE-$CHAIN"
tidy "$CONF"
command -v nft >/dev/null 2>&1 || fail "nft is not installed (firewall: nftables)"
command -v python3 >/dev/null 2>&1 || fail "python3 is needed to read the nftables chain"
# The rule's reader and editor (smtps/nft_rule.py, shipped as it is): the live chain changes rule by rule, the file
# line by line. Nothing here loads a whole file: iRedMail's $CONF begins with `flush ruleset`, which would also
# drop fail2ban's table and its bans.
nftrule() {  # nftrule COMMAND [ARGS...]
    cmd=$1
    shift
    py python3 - "$cmd" "$FAMILY" "$TABLE" "$CHAIN" "$@" <<'SMTPS_NFT_RULE'
<smtps/nft_rule.py, as it is>
SMTPS_NFT_RULE
}
FACTS=$(nftrule facts "$CONF" 2>&1) || fail "cannot read the $WHERE: $FACTS"
fact() { printf '%s\n' "$FACTS" | grep -qx "nft.$1"; }
# A file the reader will not read as nft would (an include, the chain declared twice, ...): named, nothing changed.
if fact file.chain=refused; then
    fail "cannot read the $WHERE: $(printf '%s\n' "$FACTS" | sed -n 's/^nft\.file\.why=//p') (read as nft reads it; nothing was changed)"
fi
# A copy of $CONF with (or without) the rule, checked by nft itself (-c: nothing is loaded), then renamed over it.
ADDED=no
DELETED=no
FIRST=no
edit_conf() {  # edit_conf with-rule|without-rule
    rm -f "$CONF.smtps-tmp"
    cp -p "$CONF" "$CONF.smtps-tmp"
    nftrule "$1" "$CONF" "$CONF.smtps-tmp" || fail "cannot edit $CONF"
    check=$(nft -c -f "$CONF.smtps-tmp" 2>&1) || fail "nft -c -f refuses $CONF as it would be: $check; nothing was changed in it"
    mv -f "$CONF.smtps-tmp" "$CONF"
}
# What this run changed goes back: the live rule it added (or deleted), and the file as this run found it.
undo() {
    rc=0
    rm -f "$CONF.smtps-tmp"
    if [ "$ADDED" = yes ]; then nftrule delete-live >/dev/null 2>&1 || rc=1; fi
    if [ "$DELETED" = yes ]; then nftrule add-live >/dev/null 2>&1 || rc=1; fi
    restore "$S.before" "$CONF" || rc=1
    undo_state "$rc"
}

