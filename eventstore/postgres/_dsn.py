"""
Parsing a DSN, and explaining one that cannot be parsed, without its password.

libpq's parse errors quote fragments of the DSN, and a fragment may be (part
of) the password: ``password=my secret`` fails with ``missing "=" after
"secret"``. `parse_dsn` keeps libpq's explanation, which says which key or
which part is wrong, and blanks every quoted fragment that could belong to
the password.
"""

from __future__ import annotations

import re
from typing import Any, Final

import psycopg
from psycopg.conninfo import conninfo_to_dict

from eventstore.errors import ConfigError

__all__ = ["SECRET_KEYS", "parse_dsn", "redact_parse_error", "scrub_secrets"]

_URI = re.compile(r"^postgres(?:ql)?://", re.IGNORECASE)
SECRET_KEYS: Final = ("password", "sslpassword")
"""The DSN's parameters that hold secrets: the password, and the client key's passphrase."""

_PASSWORD_KEY = re.compile(r"\b(?:ssl)?password\s*=", re.IGNORECASE)
_QUOTED = re.compile(r'"([^"]*)"')
_REDACTED = "***"
_SHORT_SECRET: Final = 4
"""Secrets shorter than this are blanked only where they stand alone (see `scrub_secrets`)."""


def parse_dsn(dsn: str) -> dict[str, Any]:
    """
    Return the parameters of *dsn* as libpq reads them.

    Raises:
        ConfigError: libpq cannot parse *dsn*; the message says why, with
            any fragment that could hold the password blanked out. Or a
            URI's user info holds an unescaped ``@``, which libpq would read
            as the start of the host name.

    """
    _refuse_ambiguous_user_info(dsn)
    try:
        return conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        # No `from exc`: its message quotes the DSN, password included.
        raise ConfigError(
            f"the DSN could not be parsed: {redact_parse_error(dsn, str(exc))}"
        ) from None


def _refuse_ambiguous_user_info(dsn: str) -> None:
    # libpq ends a URI's user info at its first "@": in
    # postgresql://app:pa@ss@host/db the password is "pa" and the host
    # "ss@host", so the rest of the password reached error messages, logs
    # and reprs as a host name. Such a URI never means what it says.
    uri = _URI.match(dsn)
    if uri is None:
        return
    # As libpq reads it: the user info ends at the first "@" before the
    # first "/"; the hosts after it end at "/" or "?" (an "@" in the query
    # string is a parameter's).
    head = dsn[uri.end() :].split("/", 1)[0]
    at = head.find("@")
    if at >= 0 and "@" in head[at + 1 :].split("?", 1)[0]:
        raise ConfigError(
            "the DSN's user name or password holds an unescaped '@'; "
            "write it as %40 in a postgresql:// URI"
        )


def redact_parse_error(dsn: str, message: str) -> str:
    """
    Return libpq's parse error *message* about *dsn* with the password blanked.

    A quoted fragment is kept only when it lies outside every part of *dsn*
    that may hold a password: the user-info of a URI, and everything after a
    ``password=`` key (in a DSN that failed to parse, the password's end is
    not known, so the rest of the string is treated as secret).
    """
    secrets = _secret_parts(dsn)

    def blank(match: re.Match[str]) -> str:
        fragment = match.group(1)
        if fragment and any(fragment in secret for secret in secrets):
            return f'"{_REDACTED}"'
        for secret in secrets:
            fragment = fragment.replace(secret, _REDACTED)
        return f'"{fragment}"'

    text = _QUOTED.sub(blank, message.strip())
    for secret in secrets:
        text = text.replace(secret, _REDACTED)
    return text


def _secret_parts(dsn: str) -> list[str]:
    parts = [dsn[match.end() :] for match in _PASSWORD_KEY.finditer(dsn)]
    uri = _URI.match(dsn)
    if uri:
        rest = dsn[uri.end() :]
        at = rest.rfind("@")
        colon = rest.find(":")
        if 0 <= colon < at:
            parts.append(rest[colon + 1 : at])
    # The longest first, so no shorter secret leaves part of a longer one.
    return sorted((part for part in parts if part.strip()), key=len, reverse=True)


def scrub_secrets(text: str, secrets: tuple[str, ...]) -> str:
    """
    Return *text* with every one of *secrets* replaced by ``***``, the longest first.

    A secret of fewer than four characters is replaced only where no letter
    or digit touches it: a password ``a`` leaves "after" alone, which
    reveals nothing, where a plain replacement would garble every word of
    the message.

    Example:
        >>> scrub_secrets("password=a failed after a retry", ("a",))
        'password=*** failed after *** retry'
    """
    # Longest first: one may hold another. Empty ones stand for no secret.
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        if len(secret) >= _SHORT_SECRET:
            text = text.replace(secret, _REDACTED)
        else:
            alone = rf"(?<![^\W_]){re.escape(secret)}(?![^\W_])"
            text = re.sub(alone, _REDACTED, text)
    return text
