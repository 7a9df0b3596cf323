"""Pulumi resources for SMTPS on iRedMail hosts: one dynamic provider per resource kind, and the per-host component
that wires them. The host-side work (settings, scripts, drift, verification) lives in `smtps/`; these files only
connect it to the engine."""
