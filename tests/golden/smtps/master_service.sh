
KEY=465
ENTRY='465 inet n - n - - smtpd -o syslog_name=postfix/smtps -o smtpd_tls_wrappermode=yes -o smtpd_sasl_auth_enable=yes -o smtpd_client_restrictions=permit_sasl_authenticated,reject -o content_filter=smtp-amavis:[127.0.0.1]:10026'
OTHER_KEYS='smtps submissions'
CONF=$(postconf -h config_directory)
MASTER="$CONF/master.cf"
# master.cf is edited on a copy (postconf -c WORK) and renamed into place: it changes in one step, never entry by
# entry, so an interrupted run leaves the complete old or the complete new file.
WORK="$CONF/.smtps-work"
S="$STATE/master"
# postfix_new_enough: `postconf -M NAME/TYPE`, with which everything here reads and edits one master.cf entry, came
# with Postfix 2.11; older ones (CentOS 7 ships 2.10) read NAME/TYPE as an unknown service. Such a Postfix is refused
# before anything changes, by its version: the compiled-in mail_version (`postconf -d`), which main.cf cannot
# override (`mail_version = 3.9.0` there changes what `postconf -h` says, not what the binary does).
# postfix_version_problem prints why this Postfix will not do (status 0), or nothing (status 1): the read-only facts
# script reports it, the scripts that change master.cf refuse with it.
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
# postconf -M pads the columns and may wrap: compare entries with white space folded and the -o overrides sorted
# (their order does not change what Postfix does, and a stack's options come as a mapping).
canon() { tr '\t\n' '  ' | tr -s ' ' | sed 's/^ //; s/ $//; s/ -o /\n/g' | { IFS= read -r head || head=""; echo "$head"; sort; }; }
# The master.cf this run started from goes back, Postfix re-reads it if it was told to, the work copy goes, and a
# state folder this run made goes too.
undo() {
    rc=0
    rm -rf "$WORK" || rc=1
    restore "$S.before" "$MASTER" || rc=1
    # Best effort: the files are what must be as before (Postfix keeps running on what it last read).
    if [ "$RELOADED" = yes ]; then postfix reload >/dev/null 2>&1 || true; fi
    undo_state "$rc"
}
RELOADED=no
FIRST=no
edit_copy() {  # edit_copy POSTCONF-ARGS...: run postconf on the work copy
    postconf -c "$WORK" "$@"
}
start_copy() {
    mkdir -m 700 "$WORK"
    cp -p "$CONF/main.cf" "$MASTER" "$WORK/"
}
# Put the work copy in place, check it, and have Postfix read it.
install_copy() {
    mv -f "$WORK/master.cf" "$MASTER"
    rm -rf "$WORK"
    check=$(postfix check 2>&1) || fail "postfix check failed: $check"
    RELOADED=yes
    postfix reload >/dev/null 2>&1 || fail "postfix reload failed"
}

