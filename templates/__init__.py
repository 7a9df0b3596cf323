"""The host-side script templates (Jinja2), package data of the installed library."""
