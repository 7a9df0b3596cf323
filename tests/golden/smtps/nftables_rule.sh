
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
nftrule() {  # nftrule COMMAND [ARGS...]
    cmd=$1
    shift
    python3 -I -S - "$cmd" "$FAMILY" "$TABLE" "$CHAIN" "$@" <<'SMTPS_NFT_RULE'
<smtps/nft_rule.py, as it is>
SMTPS_NFT_RULE
}
FACTS=$(nftrule facts "$CONF" 2>&1) || fail "cannot read the $WHERE: $FACTS"
NL='
'
fact() { case "$NL$FACTS$NL" in *"${NL}nft.$1$NL"*) return 0 ;; *) return 1 ;; esac; }
if fact file.chain=refused; then
    fail "cannot read the $WHERE: $(printf '%s\n' "$FACTS" | sed -n 's/^nft\.file\.why=//p') (read as nft reads it; nothing was changed)"
fi
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
undo() {
    rc=0
    rm -f "$CONF.smtps-tmp"
    if [ "$ADDED" = yes ]; then nftrule delete-live >/dev/null 2>&1 || rc=1; fi
    if [ "$DELETED" = yes ]; then nftrule add-live >/dev/null 2>&1 || rc=1; fi
    restore "$S.before" "$CONF" || rc=1
    undo_state "$rc"
}

