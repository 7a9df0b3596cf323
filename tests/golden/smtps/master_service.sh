
KEY=465
ENTRY='465 inet n - n - - smtpd -o syslog_name=postfix/smtps -o smtpd_tls_wrappermode=yes -o smtpd_sasl_auth_enable=yes -o smtpd_client_restrictions=permit_sasl_authenticated,reject -o content_filter=smtp-amavis:[127.0.0.1]:10026'
MAINCF=$(postconf -xh config_directory daemon_directory smtpd_tls_cert_file smtpd_tls_key_file 2>/dev/null) ||
    MAINCF=$(postconf -h config_directory)
{
    IFS= read -r CONF || CONF=""
    IFS= read -r DAEMONS || DAEMONS=""
    IFS= read -r MAIN_CERT || MAIN_CERT=""
    IFS= read -r MAIN_KEY || MAIN_KEY=""
} <<SMTPS_MAIN_CF
$MAINCF
SMTPS_MAIN_CF
[ -n "$CONF" ] || fail "postconf names no config_directory"
postfix_running() {
    if [ -z "$DAEMONS" ]; then postfix status >/dev/null 2>&1; return; fi
    ! "$DAEMONS/master" -c "$CONF" -t >/dev/null 2>&1
}
MASTER="$CONF/master.cf"
WORK="$CONF/.smtps-work"
S="$STATE/master"
postfix_version_problem() {
    version=$(postconf -dh mail_version 2>/dev/null) || version=""
    case "$version" in
    [01].*|2.[0-9]|2.[0-9][!0-9]*|2.10|2.10[!0-9]*)
        printf '%s\n' "Postfix $version (mail_version) is older than 2.11, the first that edits one master.cf entry with postconf -M name/type, which this tool needs: upgrade Postfix" ;;
    [0-9]*.[0-9]*) return 1 ;;
    *) printf '%s\n' "cannot read Postfix's version (postconf -dh mail_version: '$version'): is Postfix installed?" ;;
    esac
}
postfix_new_enough() {
    why=$(postfix_version_problem) || return 0
    fail "$why; nothing was changed"
}

tidy "$MASTER"
rm -rf "$WORK"
undo() {
    rc=0
    rm -rf "$WORK" || rc=1
    restore "$S.before" "$MASTER" || rc=1
    reload_back "$rc" || true
    undo_state "$rc"
}
FIRST=no
edit_copy() {  # edit_copy POSTCONF-ARGS...: run postconf on the work copy
    postconf -c "$WORK" "$@"
}
start_copy() {
    mkdir -m 700 "$WORK"
    cp -p "$CONF/main.cf" "$MASTER" "$WORK/"
}
folded() { set -f; set -- $1; set +f; printf '%s\n' "$*"; }
reads_back() {
    back=$(edit_copy -M "$KEY/inet") || return 1
    [ "$(folded "$back")" = "$(folded "$ENTRY")" ]
}
install_copy() {
    mv -f "$WORK/master.cf" "$MASTER"
    rm -rf "$WORK"
    reload_postfix
}

