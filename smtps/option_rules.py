"""The master.cf `-o` options a 465 entry may have without `allowOptions`: an allow-list. Postfix has hundreds of
parameters, and many of them open relaying, let clients in without logging in, point logins at another
authentication server or send mail around the content filter (`smtpd_authorized_xclient_hosts`, `smtpd_sasl_type`,
`smtpd_sasl_path`, `smtpd_sasl_exceptions_networks`, `smtpd_milter_maps`, `smtpd_command_filter`,
`cleanup_service_name`, `*_bcc_maps`, a restriction class...). A list of the dangerous ones misses the ones nobody
thought of, so the rule is turned around: only the options below pass, each one known to be harmless on a
submission entry or judged by its value; every other option is refused at preview unless the stack names it in
`allowOptions`. The check from outside catches what these miss.

Known to be harmless, whatever their value (HARMLESS; docs/settings.md, "Options", says which iRedMail and Postfix
files use each): `syslog_name`, `smtpd_tls_wrappermode`, the `smtpd_tls_*` options that say how the TLS session is made
(HARMLESS_TLS; the certificate and key come from tlsCert/tlsKey), `smtpd_tls_auth_only`,
`smtpd_reject_unlisted_recipient`, `milter_macro_daemon_name`, and `smtpd_helo_restrictions` /
`smtpd_sender_restrictions` (each list is checked on its own: a permit there never lets a client past
smtpd_client_restrictions).

Judged by their value (postconf(5), "smtpd_relay_restrictions", "smtpd_recipient_restrictions",
"smtpd_client_restrictions", "content_filter", "mynetworks"; master(5), "-o"):
- In every option: a `$`, since Postfix expands `$name` in an -o value, and a name the host does not define expands
  to nothing (`content_filter=$HOME` reads as a filter here and is no filter on the host); and an access map or
  policy service (`check_*`), whose OK, FILTER or REDIRECT (access(5)) lets a client in or sends a message
  elsewhere than the content filter, in whatever option it is written (a restriction class is an option of any
  name whose value is a restriction list).
- `smtpd_sasl_auth_enable`: `yes` only.
- `smtpd_relay_restrictions` / `smtpd_recipient_restrictions`: Postfix stops at the first `permit*` that matches. So
  `permit_sasl_authenticated` must come before any other permit (a `permit_mynetworks` first lets every client in
  mynetworks relay without logging in; a bare `permit` lets everyone), and the list must end unauthenticated relaying
  with `reject`, `reject_unauth_destination` or `defer_unauth_destination`. Before that end, only restrictions that
  reject (and `permit_mynetworks` after `permit_sasl_authenticated`).
- `smtpd_client_restrictions`: what makes 465 a port for logged-in clients only (iRedMail's 465 and 587 entries:
  `permit_sasl_authenticated,reject`). It must hold `permit_sasl_authenticated` and end in `reject`, and everything
  else in it may only reject (`reject_*`, `defer_*`): a `permit*`, an access map or a restriction class (a name
  main.cf defines) can let a client past without logging in.
- `content_filter`: submitted mail goes to this next hop instead of the host's Amavisd. It must be
  `transport:[address]:port` with a loopback IP address (a name means what the host's resolver says), a port written
  as a plain number, and not one of iRedMail's re-injection listeners (RE_INJECTION below): those are Postfix itself,
  with `content_filter=` empty, so mail sent there is delivered unfiltered. The host then checks what only it knows
  (templates/master_service.sh.j2, before any change): the transport is a master.cf `unix` service whose command is
  smtp (an lmtp one could hand mail straight to Dovecot), and the port is no Postfix `inet` listener of its master.cf.
- `mynetworks`: the clients `permit_mynetworks` lets relay. Anything beyond the loopback networks is refused here.
- Removed with `null`: `content_filter` (no filter at all) and `smtpd_client_restrictions` (main.cf's, made for
  port 25, apply instead).

iRedMail's own values, from its samples/postfix/master.cf (1.5.0 to 1.8.1, the same lines for 587 since 0.9.9) with
the installer's defaults filled in: 465 and 587 have `content_filter=smtp-amavis:[127.0.0.1]:10026` (Amavisd's
port for mail from its own users, its "ORIGINATING" policy) and `smtpd_client_restrictions=
permit_sasl_authenticated,reject`. Amavisd hands scanned mail back to Postfix on `127.0.0.1:10025` (the
`PH_POSTFIX_MAIL_REINJECT_PORT` listener), and mlmmj's mail re-enters on `127.0.0.1:10028`; both are `smtpd`
entries with `-o content_filter=` (docs/settings.md, "Options").
"""

from __future__ import annotations

import ipaddress
import re

RESTRICTIONS = ("smtpd_relay_restrictions", "smtpd_recipient_restrictions")
_ENDS_RELAYING = ("reject", "reject_unauth_destination", "defer_unauth_destination")
# Postfix's own listeners that iRedMail's master.cf defines for mail coming back from a filter (above).
RE_INJECTION = (10025, 10028)
# The port of the entry itself: settings.SMTPS_PORT, written again so that this module stays a leaf (it imports nothing
# of the project's); tests/test_option_rules.py keeps the two equal.
OWN_PORT = 465
# Known to be harmless on a 465 submission entry, whatever their value (but `$` and check_*, refused everywhere):
# what iRedMail's 465 and 587 entries and Postfix's own submission and smtps examples use (docs/settings.md, "Options").
HARMLESS = frozenset({
    "syslog_name", "smtpd_tls_wrappermode", "smtpd_tls_security_level", "smtpd_tls_auth_only",
    "smtpd_reject_unlisted_recipient", "milter_macro_daemon_name", "smtpd_helo_restrictions",
    "smtpd_sender_restrictions",
})
# And the smtpd_tls_* options that only say how the TLS session is made (ciphers, protocols, client certificates,
# logging, session cache): Postfix 3.7's `postconf -d`, and 3.9's smtpd_tls_enable_rpk. The certificate and key
# come from tlsCert/tlsKey (smtpd_tls_cert_file, smtpd_tls_key_file): the other ways to serve one are in ALWAYS.
HARMLESS_TLS = frozenset({
    "smtpd_tls_always_issue_session_ids", "smtpd_tls_ask_ccert", "smtpd_tls_auth_only",
    "smtpd_tls_ccert_verifydepth", "smtpd_tls_cert_file", "smtpd_tls_ciphers", "smtpd_tls_dh1024_param_file",
    "smtpd_tls_dh512_param_file", "smtpd_tls_eecdh_grade", "smtpd_tls_enable_rpk", "smtpd_tls_exclude_ciphers",
    "smtpd_tls_fingerprint_digest", "smtpd_tls_key_file", "smtpd_tls_loglevel", "smtpd_tls_mandatory_ciphers",
    "smtpd_tls_mandatory_exclude_ciphers", "smtpd_tls_mandatory_protocols", "smtpd_tls_protocols",
    "smtpd_tls_received_header", "smtpd_tls_req_ccert", "smtpd_tls_security_level",
    "smtpd_tls_session_cache_database", "smtpd_tls_session_cache_timeout", "smtpd_tls_wrappermode",
})
# Judged by their value (below).
RULED = frozenset({"smtpd_sasl_auth_enable", "smtpd_client_restrictions", "content_filter", "mynetworks",
                   *RESTRICTIONS})
# Options that need allowOptions whatever their value, with the words that say why (any other option not on the
# allow-list is refused with UNKNOWN's words).
ALWAYS = {
    "smtpd_authorized_xclient_hosts": "lets the clients it lists tell smtpd another client address and login "
                                      "(XCLIENT): they relay without logging in",
    "smtpd_sasl_type": "hands the logins to another kind of authentication server, which may accept any password",
    "smtpd_sasl_path": "hands the logins to another authentication server, which may accept any password",
    "smtpd_sasl_exceptions_networks": "lets the clients it lists send without being offered AUTH",
    "smtpd_restriction_classes": "defines restriction classes, options of this entry that a restriction list may "
                                 "name, and that may hold anything that permits",
    "smtpd_milter_maps": "hands the mail of the clients it lists to milters, apart from the content filter",
    **dict.fromkeys(("smtpd_tls_chain_files", "smtpd_tls_dcert_file", "smtpd_tls_dkey_file", "smtpd_tls_eccert_file",
                     "smtpd_tls_eckey_file"),
                    "serves a certificate apart from tlsCert/tlsKey, the files the certificate check reads"),
    "smtpd_proxy_filter": "hands every message, before it is queued, to a proxy that is not the content filter",
    "smtpd_milters": "hands every message to milters, which may change, accept or drop it apart from the content "
                     "filter",
    "non_smtpd_milters": "hands mail that did not come in by SMTP to milters, which may change, accept or drop it",
    "receive_override_options": "can switch off milters and header or body checks for everything received on 465",
}
# Tables whose FILTER or REDIRECT action sends a message elsewhere than the content filter (header_checks(5)).
for _table in ("header_checks", "body_checks", "mime_header_checks", "nested_header_checks", "milter_header_checks"):
    ALWAYS[_table] = "a FILTER or REDIRECT in this table sends messages elsewhere than the content filter"
# Options whose removal (`null`) needs allowOptions, and why.
KEEP = {
    "content_filter": "null removes iRedMail's content filter from the entry: submitted mail would go unfiltered",
    "smtpd_client_restrictions": "null removes the entry's own restrictions: main.cf's, made for port 25, would let "
                                 "clients in without logging in",
}
_FILTER = re.compile(r"(?P<transport>[A-Za-z0-9][A-Za-z0-9_.-]{0,63}):\[(?P<address>[^\]]*)\]:(?P<port>[0-9]+)")
# A port as a plain number: no leading zero (Postfix reads 025 as 25, and the host compares ports as numbers).
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_FILTER_SHAPE = ("is not transport:[loopback address]:port (iRedMail's: smtp-amavis:[127.0.0.1]:10026), so this "
                 "check cannot tell that it is a content filter on this host")


def _items(value: str) -> list[str]:
    return [item for item in re.split(r"[\s,]+", value) if item]


def loopback_address(text: str) -> bool:
    """An IP address of this host's loopback: 127.0.0.0/8 or ::1 (Postfix writes IPv6 in a next hop as `ipv6:...`
    or bare); never a name, whose meaning is the host resolver's."""
    text = text.removeprefix("ipv6:").removeprefix("IPv6:")
    try:
        return ipaddress.ip_address(text).is_loopback
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
    sasl = items.index("permit_sasl_authenticated")
    end = next((i for i in range(sasl, len(items)) if items[i] in _ENDS_RELAYING), None)
    if end is None:
        return (f"does not end unauthenticated relaying: add one of {', '.join(_ENDS_RELAYING)} after "
                "permit_sasl_authenticated")
    for index, item in enumerate(items[:end]):
        # Before the end of unauthenticated relaying, only what cannot permit: an access map or policy service
        # (check_*) may answer OK, and a restriction class is whatever main.cf makes it.
        if item == "permit_sasl_authenticated" or item.startswith(("reject", "defer")):
            continue
        if item == "permit_mynetworks" and index > sasl:
            continue  # mynetworks: the loopback networks only (its own rule)
        return (f"{item} comes before {items[end]}: it may let a client relay without logging in (only "
                "restrictions that reject, and permit_mynetworks after permit_sasl_authenticated, are known to be "
                "safe there)")
    return None


def _client_risk(value: str) -> str | None:
    items = _items(value)
    if "permit_sasl_authenticated" not in items:
        return "has no permit_sasl_authenticated: 465 would no longer ask clients to log in"
    for item in items:
        if item != "permit_sasl_authenticated" and not item.startswith(("reject", "defer")):
            return (f"{item} may let a client past without logging in (only permit_sasl_authenticated, and "
                    "restrictions that reject, are known to keep 465 for logged-in clients)")
    if items[-1] != "reject":
        return "does not end in reject: a client that has not logged in would get past"
    return None


def content_filter_risk(value: str) -> str | None:
    """Why `value` is not a content filter on this host (the part the settings can judge), or None."""
    found = _FILTER.fullmatch(value)
    if not found:
        return _FILTER_SHAPE
    address, written = found["address"], found["port"]
    if not loopback_address(address):
        return (f"sends submitted mail to [{address}], off this host (or to a name), instead of to its own content "
                "filter")
    if not _PORT.fullmatch(written) or int(written) > 65535:
        return f"port {written} is not a number from 1 to 65535 written without leading zeros"
    port = int(written)
    if port == OWN_PORT:
        return f"port {port} is this entry's own (Postfix itself): mail would loop back into 465, never to a filter"
    if port in RE_INJECTION:
        return (f"port {port} is iRedMail's re-injection listener (Postfix itself, with no content filter): mail "
                "sent there is delivered unfiltered")
    return None


def _mynetworks_risk(value: str) -> str | None:
    for item in _items(value):
        try:
            network = ipaddress.ip_network(item.strip("[]").replace("]/", "/"), strict=False)
        except ValueError:
            return f"{item} is not a network this check can judge (only loopback networks are accepted here)"
        if not network.is_loopback:
            return f"lets every client in {item} relay without logging in (permit_mynetworks)"
    return None


# An access map or policy service anywhere in a value: at the start of a list item, or after `=` or `:` (a lookup
# table or a restriction class written inside another value).
# Postfix reads restriction names in any case (CHECK_CLIENT_ACCESS is check_client_access).
_LOOKUP = re.compile(r"(?<![A-Za-z0-9_])check_[a-z_]*", re.IGNORECASE)
UNKNOWN = ("is not on the list of options known to be harmless on a 465 submission entry (docs/settings.md, "
           "\"Options\"): an option this check does not know may open relaying, let clients in without logging in, "
           "or send mail around the content filter")


def _value_risk(name: str, value: str) -> str | None:
    if name in RESTRICTIONS:
        return _restriction_risk(value)
    if name == "smtpd_client_restrictions":
        return _client_risk(value)
    if name == "content_filter":
        return content_filter_risk(value)
    if name == "mynetworks":
        return _mynetworks_risk(value)
    if name == "smtpd_sasl_auth_enable" and value != "yes":
        return "only yes is known here (iRedMail's): anything else changes how clients log in on 465"
    return None


def known(name: str) -> bool:
    """Is `name` on the allow-list (harmless, or judged by its value)?"""
    return name in HARMLESS or name in HARMLESS_TLS or name in RULED


def risk(name: str, value: str) -> str | None:
    """Why the option `name=value` opens relaying, lets clients in unauthenticated or bypasses the filter (or may:
    an option not on the allow-list), or None."""
    if "$" in value:
        return ("Postfix expands $name in master.cf -o values, and a name the host does not define expands to "
                "nothing: the entry would not do what this value says")
    if name in ALWAYS:
        return ALWAYS[name]
    why = _value_risk(name, value)
    if why:
        return why
    lookup = _LOOKUP.search(value)
    if lookup:
        return (f"{lookup[0]} may answer OK, FILTER or REDIRECT (access(5)), which lets a client in or sends a "
                "message elsewhere than the content filter")
    return None if known(name) else UNKNOWN


def removal_risk(name: str) -> str | None:
    """Why leaving the option out of the entry (a `null` in the settings) weakens 465, or None."""
    return KEEP.get(name)


def refusal(why: str, name: str) -> str:
    """The words of a refusal, the same at preview and on the host: the reason, and how to allow it on purpose."""
    return f"{why}; refused (to allow it on purpose: allowOptions: [{name}])"


def host_filter_checks(value: str) -> dict[str, str] | None:
    """What the host checks of a content filter the settings accepted, before any change
    (templates/master_service.sh.j2): the transport and port, and the words of each refusal."""
    found = _FILTER.fullmatch(value)
    if not found or content_filter_risk(value) is not None:
        return None
    transport, port = found["transport"], found["port"]
    return {
        "transport": transport, "port": port,
        "no_transport": refusal(f"{value!r}: transport {transport} is not a master.cf unix service whose command is "
                                "smtp on this host, so it is no content filter this check knows",
                                "content_filter"),
        "listener": refusal(f"{value!r}: port {port} is a Postfix listener of this host's master.cf, not a content "
                            "filter: mail sent there would be delivered without one", "content_filter"),
    }
