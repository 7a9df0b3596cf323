# <prologue.sh changed as below, then master_service.sh, then the lines below>
# @@ -2 +2 @@
# -# 'zone membership' on mail1: remove. Rendered by smtps-iredmail: every value below was quoted when
# +# 'master.cf service' on mail1: apply. Rendered by smtps-iredmail: every value below was quoted when
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
postfix_new_enough
master_cf() {  # master_cf COMMAND [ARGS...]
    "$(host_python)" -I -S - "$@" <<'SMTPS_MASTER_CF'
<smtps/master_cf.py, as it is>
SMTPS_MASTER_CF
}
PLAN=$(master_cf plan "$KEY" "$ENTRY" 465 smtps submissions --filter smtp-amavis 10026 2>&1) || fail "cannot read master.cf: $PLAN"
refuse="" write="" current="" others="" found_key="" found=""
while IFS= read -r line; do
    case "$line" in
        refuse=*) refuse=${line#*=} ;;
        write=*) write=${line#*=} ;;
        current=*) current=${line#*=} ;;
        others=*) others=${line#*=} ;;
        found.key=*) found_key=${line#*=} ;;
        found.line=*) found="${found:+$found
}${line#*=}" ;;
    esac
done <<SMTPS_PLAN
$PLAN
SMTPS_PLAN
[ -n "$write" ] || fail "cannot read master.cf: $PLAN"

case "$refuse" in
    no_transport) fail "setting options.content_filter: "''"'"'smtp-amavis:[127.0.0.1]:10026'"'"': transport smtp-amavis is not a master.cf unix service whose command is smtp on this host, so it is no content filter this check knows; refused (to allow it on purpose: allowOptions: [content_filter])'"; nothing was changed" ;;
    listener) fail "setting options.content_filter: "''"'"'smtp-amavis:[127.0.0.1]:10026'"'"': port 10026 is a Postfix listener of this host'"'"'s master.cf, not a content filter: mail sent there would be delivered without one; refused (to allow it on purpose: allowOptions: [content_filter])'"; nothing was changed" ;;
esac



CERT=$MAIN_CERT
[ -n "$CERT" ] || fail "no TLS certificate: neither tlsCert nor main.cf's smtpd_tls_cert_file names one"



TLSKEY=$MAIN_KEY
[ -n "$TLSKEY" ] || fail "no TLS key: neither tlsKey nor main.cf's smtpd_tls_key_file names one"


[ -f "$CERT" ] || fail "TLS certificate $CERT does not exist"
[ -f "$TLSKEY" ] || fail "TLS key $TLSKEY does not exist"
expired=no
if ! x509=$(openssl x509 -in "$CERT" -noout -pubkey -fingerprint -sha256 -checkend 0 2>/dev/null); then
    x509=$(openssl x509 -in "$CERT" -noout -pubkey -fingerprint -sha256 2>/dev/null) ||
        fail "TLS certificate $CERT is not a PEM certificate"
    expired=yes
fi
cert_pub="${x509%%-----END PUBLIC KEY-----*}-----END PUBLIC KEY-----"
FP=${x509#*Fingerprint=}
FP=${FP%%[!0-9A-Fa-f:]*}
key_pub=$(openssl pkey -in "$TLSKEY" -pubout 2>/dev/null) || fail "TLS key $TLSKEY is not a readable private key"
[ "$cert_pub" = "$key_pub" ] || fail "TLS key $TLSKEY does not belong to certificate $CERT"
[ "$expired" = no ] || fail "TLS certificate $CERT has expired"
sha=$(printf '%s\n' "$FP" | tr -d ':' | tr 'A-F' 'a-f')
printf 'smtps-cert-file=%s\nsmtps-cert-sha256=%s\n' "$CERT" "$sha"

postfix_running || fail "postfix is not running: this tool does not start it (it was stopped for a reason, or it failed); start it (postfix start) and run this again"

if [ "$write" = no ]; then
    if [ -d "$S" ] && [ ! -e "$S/applied" ]; then put "$MASTER" "$S/applied"; fi
    say "master.cf $KEY/inet: up to date"
    exit 0
fi

on_failure undo
keep_for_run "$MASTER"
if [ ! -d "$S" ]; then
    FIRST=yes
    begin_state "$S"
    : > "$S.new/entry"
    if [ -n "$found_key" ]; then printf '%s\n%s\n' "$found_key" "$found" > "$S.new/entry"; fi
    cp -p "$MASTER" "$S.new/orig"
    commit_state "$S"
elif changed_since "$S" "$MASTER" "$S.before"; then
    rm -f "$S/orig"
    if [ "$current" = no ] && [ -z "$others" ]; then
        put "$MASTER" "$S/orig"
        : > "$S/entry"
    fi
fi
put "$MASTER" "$S.before"

start_copy
for k in $others; do
    edit_copy -MX "$k/inet"
done
edit_copy -M "$KEY/inet=$ENTRY"
reads_back || fail "postconf -M $KEY/inet does not read back the entry"
install_copy
put "$MASTER" "$S/applied"
left_for_run "$MASTER"
on_failure ""
rm -f "$S.before"
say "master.cf $KEY/inet: written${others:+ (replaced $others)}; postfix reloaded"

