# <facts.sh, changed as below>
@@ -48,44 +47,0 @@
-[44 lines of facts.sh: 48 to 91]
@@ -94 +49,0 @@
-if [ "$SMTPS_FIREWALL" = firewalld ]; then
@@ -96,28 +50,0 @@
-[28 lines of facts.sh: 96 to 123]
@@ -138 +64,0 @@
-fi
@@ -140 +65,0 @@
-
