"""SMTPS on iRedMail hosts: typed settings and the host-side scripts, rendered purely from them."""
