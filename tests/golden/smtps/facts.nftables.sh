# <facts.sh, changed as below>
@@ -34,35 +33,0 @@
-[35 lines of facts.sh: 34 to 68]
@@ -71 +35,0 @@
-if [ "$SMTPS_FIREWALL" = firewalld ]; then
@@ -73,25 +36,0 @@
-[25 lines of facts.sh: 73 to 97]
@@ -110 +48,0 @@
-fi
@@ -112 +49,0 @@
-
