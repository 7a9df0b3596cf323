"""The master.cf options for 465 that open relaying or send submitted mail around the content filter: refused at
preview unless the stack allows them by name (`allowOptions`). The check from outside catches what these miss.

The rules (postconf(5), "smtpd_relay_restrictions", "smtpd_recipient_restrictions", "content_filter", "mynetworks"):
- `smtpd_relay_restrictions` / `smtpd_recipient_restrictions`: Postfix stops at the first `permit*` that matches. So
  `permit_sasl_authenticated` must come before any other permit (a `permit_mynetworks` first lets every client in
  mynetworks relay without logging in; a bare `permit` lets everyone), and the list must end unauthenticated relaying
  with `reject`, `reject_unauth_destination` or `defer_unauth_destination`.
- `content_filter`: submitted mail goes to this next hop instead of the local Amavisd. A next hop that is not this
  host (127.0.0.0/8, ::1, localhost) sends every message off the host unfiltered.
- `mynetworks`: the clients `permit_mynetworks` lets relay. Anything beyond the loopback networks is refused here.
"""

from __future__ import annotations

import ipaddress
import re

RESTRICTIONS = ("smtpd_relay_restrictions", "smtpd_recipient_restrictions")
_ENDS_RELAYING = ("reject", "reject_unauth_destination", "defer_unauth_destination")
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


def _items(value: str) -> list[str]:
    return [item for item in re.split(r"[\s,]+", value) if item]


def _loopback(host: str) -> bool:
    host = host.strip("[]")
    host = host.removeprefix("ipv6:").removeprefix("IPv6:")
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _restriction_risk(value: str) -> str | None:
    items = _items(value)
    for item in items:
        if item == "permit_sasl_authenticated":
            break
        if item.startswith("permit"):
            return (f"{item} comes before permit_sasl_authenticated: clients it matches relay without logging in "
                    "(put permit_sasl_authenticated first)")
    else:
        return "has no permit_sasl_authenticated: the rule for logged-in clients is missing"
    if not any(item in _ENDS_RELAYING for item in items[items.index("permit_sasl_authenticated"):]):
        return (f"does not end unauthenticated relaying: add one of {', '.join(_ENDS_RELAYING)} after "
                "permit_sasl_authenticated")
    return None


def _content_filter_risk(value: str) -> str | None:
    _transport, _, nexthop = value.partition(":")
    if not nexthop:
        return None  # the transport's own default next hop (master.cf's, on this host)
    # [host]:port, host:port, [ipv6:::1]:port: the host is what comes before the last ':port'.
    host = nexthop
    if re.fullmatch(r".*:[0-9]+", nexthop) and not nexthop.endswith("]"):
        host = nexthop.rsplit(":", 1)[0]
    if _loopback(host):
        return None
    return f"sends submitted mail to {host}, off this host, instead of to its own content filter"


def _mynetworks_risk(value: str) -> str | None:
    for item in _items(value):
        try:
            network = ipaddress.ip_network(item.strip("[]").replace("]/", "/"), strict=False)
        except ValueError:
            return f"{item} is not a network this check can judge (only loopback networks are accepted here)"
        if not network.is_loopback:
            return f"lets every client in {item} relay without logging in (permit_mynetworks)"
    return None


def risk(name: str, value: str) -> str | None:
    """Why the option `name=value` opens relaying or bypasses the filter, or None."""
    if name in RESTRICTIONS:
        return _restriction_risk(value)
    if name == "content_filter":
        return _content_filter_risk(value)
    if name == "mynetworks":
        return _mynetworks_risk(value)
    return None
