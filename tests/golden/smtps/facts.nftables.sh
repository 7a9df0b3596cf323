# <facts.sh, changed as below>
@@ -37,35 +36,0 @@
-[35 lines of facts.sh: 37 to 71]
@@ -74 +38,0 @@
-if [ "$SMTPS_FIREWALL" = firewalld ]; then
@@ -76,25 +39,0 @@
-[25 lines of facts.sh: 76 to 100]
@@ -113 +51,0 @@
-fi
@@ -115 +52,0 @@
-
