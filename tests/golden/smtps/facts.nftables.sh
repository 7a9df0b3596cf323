# <facts.sh, changed as below>
@@ -46,35 +45,0 @@
-[35 lines of facts.sh: 46 to 80]
@@ -83 +47,0 @@
-if [ "$SMTPS_FIREWALL" = firewalld ]; then
@@ -85,24 +48,0 @@
-[24 lines of facts.sh: 85 to 108]
@@ -121 +60,0 @@
-fi
@@ -123 +61,0 @@
-
