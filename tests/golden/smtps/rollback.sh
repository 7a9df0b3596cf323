# <prologue.sh changed as below, then the lines below>
# @@ -2 +2 @@
# -# 'zone membership' on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when
# +# rollback on mail1: rollback. Rendered by smtps-iredmail: every value below was quoted when
# @@ -21 +21 @@
# -KIND='zone membership'
# +KIND=rollback
# @@ -24 +24 @@
# -RUN=''
# +RUN=0123456789abcdef
# @@ -289,6 +288,0 @@
# -[6 lines of prologue.sh: 289 to 294]
# </prologue.sh>

CONF=$(postconf -h config_directory)
MASTER="$CONF/master.cf"
ZONE=''
SERVICE=''
PORT=465/tcp
NFT_CHAIN=''
if [ -z "$RUN" ] || [ ! -d "$RUNDIR" ] || [ "$(cat "$RUNDIR/id" 2>/dev/null)" != "$RUN" ]; then
    say "nothing of this run to undo here"
    echo "smtps-rollback=none"
    exit 0
fi
refuse() { fail "the snapshot of this run $*: nothing was rolled back"; }
[ ! -L "$RUNDIR" ] || refuse "is a symbolic link"
odd=$(find "$RUNDIR" \( ! -type f ! -type d \) -o \( -type f -links +1 \) | head -n 1)
[ -z "$odd" ] || refuse "holds $odd, which is not a plain file or folder"
target_ok() {
    case "$1" in
        "$MASTER") return 0 ;;
        /etc/nftables.conf) return 0 ;;
    esac
    [ -n "$ZONE" ] || return 1
    case "$1" in
        "/etc/firewalld/services/$SERVICE.xml" | "/etc/firewalld/zones/$ZONE.xml" | "/etc/firewalld/zones/$ZONE.xml.old")
            return 0 ;;
    esac
    return 1
}
while IFS= read -r target; do
    target_ok "$target" || refuse "names $target, which is not a file this tool changes"
done < "$RUNDIR/targets"
n=0
while IFS= read -r target; do
    if [ -e "$RUNDIR/$n" ]; then
        [ "$(wc -c < "$RUNDIR/$n")" -le 1048576 ] || refuse "holds a copy of $target larger than 1 MiB"
        case "$target" in
            *.xml | *.xml.old)
                py "$FWPY" -c "import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])" "$RUNDIR/$n" \
                    </dev/null >/dev/null 2>&1 || refuse "holds a copy of $target that is not well-formed XML" ;;
        esac
    fi
    n=$((n + 1))
done < "$RUNDIR/targets"
journal_ok() {  # LAYER OP WHAT VALUE ZONE
    case "$1" in
        nft)
            case "$2" in add|delete) ;; *) return 1 ;; esac
            [ -n "$NFT_CHAIN" ] && [ "$3 $4 $5" = "$NFT_CHAIN" ] || return 1
            return 0 ;;
        permanent|runtime) ;;
        *) return 1 ;;
    esac
    case "$2" in add|remove) ;; *) return 1 ;; esac
    [ -n "$ZONE" ] && [ "$5" = "$ZONE" ] || return 1
    case "$3 $4" in "service $SERVICE" | "port $PORT") return 0 ;; esac
    return 1
}
if [ -s "$RUNDIR/journal" ]; then
    while read -r layer op what value zone; do
        [ -z "$layer" ] || journal_ok "$layer" "$op" "$what" "$value" "$zone" ||
            refuse "holds a journal line that is no change of this tool's ($layer $op $what $value $zone)"
    done < "$RUNDIR/journal"
fi
SOURCE_CHECK='import re, socket, sys
for src in sys.argv[1:]:
    addr, slash, bits = src.partition("/")
    v6 = ":" in addr
    why = ""
    if re.match(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$", src):
        continue
    try:
        socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, addr)
    except (socket.error, ValueError):
        why = "not an address"
    if not why and slash:
        if not bits.isdigit():
            why = "not a prefix length"
        elif int(bits) > (128 if v6 else 32):
            why = "a prefix longer than an address"
        elif int(bits) < (32 if v6 else 8):
            why = "a network of /%d, wider than /%d" % (int(bits), 32 if v6 else 8)
    if why:
        print("%s (%s)" % (src, why))'
REBIND=""
ACCEPTING=""
if [ -s "$RUNDIR/dropped" ]; then
    zones=" $(firewall-cmd --get-zones 2>/dev/null) "
    before=$(bindings_of "$RUNDIR/bindings" 2>/dev/null) || before=""
    sources=""
    while IFS= read -r line; do
        set -f
        set -- $line
        set +f
        ok=no
        if [ "$#" -eq 3 ] && printf '%s\n' "$before" | grep -qxF -- "$line"; then
            case "$1" in *[!A-Za-z0-9_.+-]*|'') ;; *) case "$zones" in *" $1 "*) ok=yes ;; esac ;; esac
            case "$2:$3" in
                interface:*[!A-Za-z0-9_.:@-]* | source:*[!A-Za-z0-9_.:/-]* | source:-*) ok=no ;;
                interface:?*) ;;
                source:?*) sources="$sources $3" ;;
                *) ok=no ;;
            esac
        fi
        [ "$ok" = yes ] || refuse "holds a binding its reload did not drop, or that this tool never makes ($line)"
    done < "$RUNDIR/dropped"
    set -f
    wide=$(py "$FWPY" -c "$SOURCE_CHECK" $sources) || refuse "holds sources that could not be read ($sources)"
    set +f
    [ -z "$wide" ] || refuse "holds a binding of a source that is not one address or a narrow network: $wide"
    while read -r zone kind name; do
        target=$(firewall-cmd --permanent --zone="$zone" --get-target 2>/dev/null) || target=unknown
        case "$zone:$target" in
            trusted:*) ACCEPTING="$ACCEPTING; $kind $name to zone $zone" ;;
            *:default | *:DROP | *:REJECT | *:%%REJECT%%) REBIND="$REBIND$zone $kind $name
" ;;
            *) ACCEPTING="$ACCEPTING; $kind $name to zone $zone (target $target)" ;;
        esac
    done < "$RUNDIR/dropped"
fi
same_as_found() {  # same_as_found N TARGET: is TARGET as this run found it?
    if [ -e "$RUNDIR/$1" ]; then [ -e "$2" ] && cmp -s "$RUNDIR/$1" "$2"; else [ ! -e "$2" ]; fi
}
AFTER="$RUNDIR/after"
rm -rf "$AFTER"
mkdir "$AFTER"
still_as_left() {
    if [ -e "$RUNDIR/left-$1" ]; then [ -e "$2" ] && cmp -s "$RUNDIR/left-$1" "$2"
    elif [ -e "$RUNDIR/left-$1.absent" ]; then [ ! -e "$2" ]
    else return 0; fi
}
CHANGED=""
THEIRS=""
n=0
while IFS= read -r target; do
    if ! same_as_found "$n" "$target"; then
        if ! still_as_left "$n" "$target"; then
            THEIRS="$THEIRS $target"
        else
            if [ -e "$target" ]; then cp -p "$target" "$AFTER/$n"; fi
            CHANGED="$CHANGED $n"
        fi
    fi
    n=$((n + 1))
done < "$RUNDIR/targets"
STATE_CHANGED=""
for f in "$RUNDIR"/left-state-*; do
    [ -e "$f" ] || continue
    e=${f##*/left-state-}
    case "$e" in *[!A-Za-z0-9_+-]*|'') refuse "names a state folder $e, which is not one of this tool's" ;; esac
    now=$(entry_sum "$STATE/$e")
    [ "$now" != "$(entry_sum "$RUNDIR/state/$e")" ] || continue
    if [ "$now" = "$(cat "$f")" ]; then
        STATE_CHANGED="$STATE_CHANGED $e"
        if [ -e "$STATE/$e" ]; then cp -a "$STATE/$e" "$AFTER/state-$e"; fi
    else
        THEIRS="$THEIRS $STATE/$e"
    fi
done
target_of() { sed -n "$(($1 + 1))p" "$RUNDIR/targets"; }
put_state() {  # put_state FOLDER PREFIX: each changed state entry as kept at FOLDER/PREFIX+NAME (none: it goes)
    for e in $STATE_CHANGED; do
        rm -rf "$STATE/$e.new" "$STATE/$e.gone"
        if [ -e "$1/$2$e" ]; then
            { mkdir -p "$STATE" && chmod 700 "$STATE" && cp -a "$1/$2$e" "$STATE/$e.new"; } || return 1
        fi
        if [ -e "$STATE/$e" ]; then mv -T "$STATE/$e" "$STATE/$e.gone" || return 1; fi
        if [ -e "$STATE/$e.new" ]; then mv -T "$STATE/$e.new" "$STATE/$e" || return 1; fi
        rm -rf "$STATE/$e.gone"
    done
    rmdir "$STATE" 2>/dev/null || true
}
put_files() {  # put_files FOLDER: each changed target as kept in FOLDER (absent there: the file goes)
    for i in $CHANGED; do
        t=$(target_of "$i")
        if [ -e "$1/$i" ]; then put "$1/$i" "$t"; else rm -f "$t"; fi
    done
}
MASTER_CHANGED=no
FIREWALLD_CHANGED=no
NFT_CHANGED=no
for i in $CHANGED; do
    case "$(target_of "$i")" in
        "$MASTER") MASTER_CHANGED=yes ;;
        /etc/nftables.conf) NFT_CHANGED=yes ;;  # the file loaded at boot: nothing reloads it
        *) FIREWALLD_CHANGED=yes ;;
    esac
done
RELOAD=no
if [ "$FIREWALLD_CHANGED" = yes ] && [ -e "$RUNDIR/reloaded" ]; then RELOAD=yes; fi
undo() {
    rc=0
    put_files "$AFTER" || rc=1
    put_state "$AFTER" state- || rc=1
    reload_back "$rc" || rc=1
    return "$rc"
}
rebind() {
    [ -z "$ACCEPTING" ] ||
        say "warning: not bound again, to a zone that accepts everything or whose target could not be read (bind it yourself if it should be):${ACCEPTING#;}"
    printf '%s' "$REBIND" | while read -r zone kind name; do
        [ "$(firewall-cmd --get-zone-of-"$kind"="$name" 2>/dev/null)" = "$zone" ] ||
            firewall-cmd --zone="$zone" --change-"$kind"="$name" >/dev/null 2>&1 ||
            say "warning: could not bind $kind $name to zone $zone again"
    done
}
nft_undo() {
    case "$1" in add) cmd=add-live ;; delete) cmd=delete-live ;; *) return 2 ;; esac
    case "$2" in inet|ip|ip6) ;; *) return 2 ;; esac
    case "$3$4" in *[!A-Za-z0-9_.-]*|'') return 2 ;; esac
    py python3 - "$cmd" "$2" "$3" "$4" >/dev/null <<'SMTPS_NFT_RULE'
<smtps/nft_rule.py, as it is>
SMTPS_NFT_RULE
}
firewalld_running() {
    if command -v dbus-send >/dev/null 2>&1; then
        dbus-send --system --print-reply=literal --dest=org.freedesktop.DBus /org/freedesktop/DBus \
            org.freedesktop.DBus.NameHasOwner string:org.fedoraproject.FirewallD1 2>/dev/null | grep -qw true || return 1
        dbus-send --system --print-reply=literal --dest=org.fedoraproject.FirewallD1 /org/fedoraproject/FirewallD1 \
            org.freedesktop.DBus.Properties.Get string:org.fedoraproject.FirewallD1 string:state 2>/dev/null |
            grep -qw RUNNING
    else
        firewall-cmd --state >/dev/null 2>&1
    fi
}

on_failure undo
if [ "$FIREWALLD_CHANGED" = yes ]; then
    firewalld_running || fail "firewalld is not running: the firewall cannot be put back"
fi
if [ -s "$RUNDIR/journal" ]; then
    while read -r layer op what value zone; do
        case "$layer" in
            "") ;;
            nft) nft_undo "$op" "$what" "$value" "$zone" ||
                fail "cannot undo this run's change of nftables chain $what $value $zone ($op)" ;;
            *) [ "$RELOAD" = yes ] || zone_op "$layer" "$op" "$what" "$value" "$zone" ||
                fail "cannot undo this run's change of zone $zone ($layer $op $what $value)" ;;
        esac
    done < "$RUNDIR/journal"
fi
put_files "$RUNDIR"
put_state "$RUNDIR/state" ""
if [ "$MASTER_CHANGED" = yes ]; then
    reload_postfix "master.cf as it was before this run"
fi
if [ "$RELOAD" = yes ]; then
    set --
    for i in $CHANGED; do
        t=$(target_of "$i")
        [ "$t" != "$MASTER" ] || continue
        if [ -e "$AFTER/$i" ]; then set -- "$@" "$t" "$AFTER/$i"; else set -- "$@" "$t" -; fi
    done
    reload_firewalld plain "$@" -- "$@"
    rebind
fi
on_failure ""
rm -rf "$RUNDIR"
what=""
[ "$MASTER_CHANGED" = no ] || what="$what master.cf (postfix reloaded);"
if [ "$RELOAD" = yes ]; then what="$what firewalld files (firewalld reloaded);"
elif [ "$FIREWALLD_CHANGED" = yes ]; then what="$what firewalld zone (both layers, no reload);"; fi
[ "$NFT_CHANGED" = no ] || what="$what /etc/nftables.conf and the live rule;"
say "rolled back:${what:- nothing differed from what this run found}"
if [ -n "$THEIRS" ]; then
    say "left as they are, changed by someone else since this run wrote them:$THEIRS"
    echo "smtps-rollback=partial:$THEIRS"
else
    echo "smtps-rollback=done"
fi
confirm_needed
