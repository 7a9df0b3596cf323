"""SMTPS (implicit TLS on 465) on iRedMail/Postfix hosts, as a Pulumi component:

    from smtps_iredmail import SmtpsHost, SmtpsHostArgs, JumpArgs

The component and its resources live here (the repository's components/); the settings, host-side scripts and the
`smtps` command in `smtps_iredmail.core` (smtps/). Names are imported on first use, so that the command and the
provider processes start without loading the component's Pulumi machinery they do not need."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["JumpArgs", "SmtpsHost", "SmtpsHostArgs", "set_deploy_key"]

if TYPE_CHECKING:
    from .host import JumpArgs, SmtpsHost, SmtpsHostArgs, set_deploy_key


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import host

        return getattr(host, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
