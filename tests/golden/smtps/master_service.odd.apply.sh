# <the default apply script (prologue.sh as master_service.apply.sh changes it, master_service.sh, master_service.apply.sh), changed by the odd values as below>
@@ -359 +359 @@
-ENTRY='465 inet n - n - - smtpd -o syslog_name=postfix/smtps -o smtpd_tls_wrappermode=yes -o smtpd_sasl_auth_enable=yes -o smtpd_client_restrictions=permit_sasl_authenticated,reject -o content_filter=smtp-amavis:[127.0.0.1]:10026'
+ENTRY='465 inet n - n - - smtpd -o syslog_name=postfix/smtps$HOME;x -o smtpd_tls_wrappermode=yes -o smtpd_sasl_auth_enable=yes -o smtpd_client_restrictions=permit_sasl_authenticated,reject -o content_filter=smtp-amavis:[127.0.0.1]:10026 -o smtpd_sender_restrictions=!* -o smtpd_tls_cert_file=/etc/ssl/mx+1.crt -o smtpd_tls_key_file=/etc/ssl/private/mx_1.key'
@@ -450,2 +450 @@
-CERT=$MAIN_CERT
-[ -n "$CERT" ] || fail "no TLS certificate: neither tlsCert nor main.cf's smtpd_tls_cert_file names one"
+CERT=/etc/ssl/mx+1.crt
@@ -455,2 +454 @@
-TLSKEY=$MAIN_KEY
-[ -n "$TLSKEY" ] || fail "no TLS key: neither tlsKey nor main.cf's smtpd_tls_key_file names one"
+TLSKEY=/etc/ssl/private/mx_1.key
