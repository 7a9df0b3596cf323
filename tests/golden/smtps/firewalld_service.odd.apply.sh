# <the default apply script (prologue.sh as firewalld_service.apply.sh changes it, firewalld_service.sh, firewalld_service.apply.sh), changed by the odd values as below>
@@ -494,2 +494,2 @@
-  <short>Enable SMTPS</short>
-  <description>Enable SMTPS.</description>
+  <short>SMTPS 'implicit' TLS</short>
+  <description>Port 465 for mail clients; see RFC 8314.</description>
