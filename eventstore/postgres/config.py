"""`PoolConfig`: the validated settings of the connection pool a `PostgresEventStore` opens."""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from eventstore._validation import MAX_SECONDS
from eventstore.errors import ConfigError

__all__ = ["ENV_PREFIX", "PoolConfig", "PoolConfigWarning"]

_log = logging.getLogger("eventstore.postgres")

ENV_PREFIX = "EVENTSTORE_POOL_"
"""Prefix of the environment variables `PoolConfig.from_env` reads."""

MIN_POOL_SIZE = 1
MAX_POOL_SIZE = 1000
WARN_MIN_SIZE = 100
WARN_MAX_SIZE = 500
MAX_PREPARED_STATEMENTS = 100_000
_MAX_APPLICATION_NAME_BYTES = 63  # NAMEDATALEN - 1; PostgreSQL truncates longer names


class PoolConfigWarning(UserWarning):
    """A pool setting is legal but probably a mistake (far more connections than a server serves well)."""


def _check_size(
    instance: PoolConfig, attribute: attrs.Attribute[int], value: int
) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(
            f"{attribute.name} must be an int, got {type(value).__name__} {value!r}"
        )
    if not MIN_POOL_SIZE <= value <= MAX_POOL_SIZE:
        raise ConfigError(
            f"{attribute.name} must be between {MIN_POOL_SIZE} and {MAX_POOL_SIZE}, got {value}"
        )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


MAX_SERVER_TIMEOUT = 2_147_483.647
"""Longest ``statement_timeout`` or ``lock_timeout`` PostgreSQL takes, in seconds (INT_MAX ms)."""


def _check_seconds(
    instance: PoolConfig, attribute: attrs.Attribute[float], value: float
) -> None:
    if not _is_number(value) or not 0 < value <= MAX_SECONDS:
        raise ConfigError(
            f"{attribute.name} must be a positive number of seconds up to "
            f"{MAX_SECONDS:.0f}, got {value!r}"
        )


def _check_server_timeout(
    instance: PoolConfig, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    # A longer one makes the server refuse every connection the pool opens
    # ("invalid value for parameter"), which looks like an outage.
    if value is not None and (
        not _is_number(value) or not 0 < value <= MAX_SERVER_TIMEOUT
    ):
        raise ConfigError(
            f"{attribute.name} must be None or a positive number of seconds up to "
            f"{MAX_SERVER_TIMEOUT:,} (PostgreSQL's limit), got {value!r}"
        )


def _check_max_waiting(
    instance: PoolConfig, attribute: attrs.Attribute[int], value: int
) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(
            f"{attribute.name} must be an int of at least 0 (0: no limit), got {value!r}"
        )


def _check_prepared_statements(
    instance: PoolConfig, attribute: attrs.Attribute[int], value: int
) -> None:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not 1 <= value <= MAX_PREPARED_STATEMENTS
    ):
        raise ConfigError(
            f"{attribute.name} must be an int between 1 and "
            f"{MAX_PREPARED_STATEMENTS}, got {value!r}"
        )


def _check_application_name(
    instance: PoolConfig, attribute: attrs.Attribute[str], value: str
) -> None:
    if not isinstance(value, str):
        raise ConfigError(f"{attribute.name} must be a str, got {value!r}")
    if "\x00" in value or not value.isprintable():
        raise ConfigError(f"{attribute.name} must be printable text, got {value!r}")
    if len(value.encode("utf-8", "replace")) > _MAX_APPLICATION_NAME_BYTES:
        raise ConfigError(
            f"{attribute.name} must fit {_MAX_APPLICATION_NAME_BYTES} bytes, got {value!r}"
        )


@attrs.frozen
class PoolConfig:
    """
    Settings of the connection pool a `PostgresEventStore` opens from a DSN.

    Validated at construction: a bad value raises `ConfigError` naming the
    field. Sizes above 100 (min) or 500 (max) are allowed but warn with
    `PoolConfigWarning` and a log line: few servers serve that many
    connections well (see ``docs/postgres.md``, "Sizing the pool").

    Args:
        min_size: Connections kept open, 1 to 1000.
        max_size: Most connections open at once, 1 to 1000, at least *min_size*.
        timeout: Seconds a call waits for a free connection before
            `PoolExhaustedError`.
        max_waiting: Most calls queued for a connection; more fail at once
            with `PoolExhaustedError`. 0: no limit.
        max_idle: Seconds an idle connection above *min_size* is kept.
        max_lifetime: Seconds after which a connection is replaced.
        statement_timeout: Seconds a statement may run before it is
            cancelled (`StoreTimeoutError`), up to `MAX_SERVER_TIMEOUT`
            (PostgreSQL's limit); ``None``: the server's setting.
        lock_timeout: Seconds a statement may wait for a lock
            (`StoreTimeoutError`), up to `MAX_SERVER_TIMEOUT`; ``None``:
            the server's setting.
        application_name: Shown in ``pg_stat_activity``.
        prepared_statements: Most statements each connection keeps prepared
            (psycopg's ``prepared_max``, whose own default is 100), 1 to
            100,000. The plain layout uses about 12, a hash-partitioned one
            about 8 more per partition; each costs the server some 50 kB
            per connection once used, and past this many the least used
            are re-planned when used again.

    Raises:
        ConfigError: A value out of range or of the wrong type.

    Example:
        >>> PoolConfig(min_size=2, max_size=8).max_size
        8

    """

    min_size: int = attrs.field(default=1, validator=_check_size)
    max_size: int = attrs.field(default=10, validator=_check_size)
    timeout: float = attrs.field(default=30.0, validator=_check_seconds)
    max_waiting: int = attrs.field(default=0, validator=_check_max_waiting)
    max_idle: float = attrs.field(default=600.0, validator=_check_seconds)
    max_lifetime: float = attrs.field(default=3600.0, validator=_check_seconds)
    statement_timeout: float | None = attrs.field(
        default=None, validator=_check_server_timeout
    )
    lock_timeout: float | None = attrs.field(
        default=None, validator=_check_server_timeout
    )
    application_name: str = attrs.field(
        default="eventstore", validator=_check_application_name
    )
    prepared_statements: int = attrs.field(
        default=400, validator=_check_prepared_statements
    )

    def __attrs_post_init__(self) -> None:
        if self.min_size > self.max_size:
            raise ConfigError(
                f"min_size ({self.min_size}) must not exceed max_size ({self.max_size})"
            )
        for name, value, threshold in (
            ("min_size", self.min_size, WARN_MIN_SIZE),
            ("max_size", self.max_size, WARN_MAX_SIZE),
        ):
            if value > threshold:
                message = (
                    f"pool {name}={value} is above {threshold}: PostgreSQL serves "
                    "that many connections poorly; see docs/postgres.md on sizing"
                )
                _log.warning(message)
                warnings.warn(message, PoolConfigWarning, stacklevel=3)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PoolConfig:
        """
        Build a config from ``EVENTSTORE_POOL_*`` environment variables.

        Unset variables keep their defaults. One variable per field:

        - ``EVENTSTORE_POOL_MIN_SIZE``, ``EVENTSTORE_POOL_MAX_SIZE``,
          ``EVENTSTORE_POOL_MAX_WAITING``,
          ``EVENTSTORE_POOL_PREPARED_STATEMENTS``: ints;
        - ``EVENTSTORE_POOL_TIMEOUT``, ``EVENTSTORE_POOL_MAX_IDLE``,
          ``EVENTSTORE_POOL_MAX_LIFETIME``: seconds;
        - ``EVENTSTORE_POOL_STATEMENT_TIMEOUT``,
          ``EVENTSTORE_POOL_LOCK_TIMEOUT``: seconds, or ``none``;
        - ``EVENTSTORE_POOL_APPLICATION_NAME``: text.

        Args:
            environ: The variables to read; ``os.environ`` when ``None``.

        Raises:
            ConfigError: A malformed or out-of-range value (naming the
                variable), or an unknown ``EVENTSTORE_POOL_*`` variable (a
                typo), naming it and listing the known ones.

        """
        env = os.environ if environ is None else environ
        known = {ENV_PREFIX + name.upper(): name for name in _PARSERS}
        unknown = sorted(key for key in env if _looks_like_ours(key, known))
        if unknown:
            raise ConfigError(
                f"unknown environment variable {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {}
        for variable, field in known.items():
            if variable not in env:
                continue
            raw = env[variable]
            try:
                values[field] = _PARSERS[field](raw)
            except ValueError as exc:
                raise ConfigError(f"{variable}={raw!r} is malformed: {exc}") from exc
        try:
            return cls(**values)
        except ConfigError as exc:
            bad_field = _field_named_in(str(exc))
            variable = (
                ENV_PREFIX + bad_field.upper()
                if bad_field
                else ", ".join(sorted(ENV_PREFIX + name.upper() for name in values))
            )
            raise ConfigError(f"{variable}: {exc}") from exc


def _looks_like_ours(variable: str, known: Mapping[str, str]) -> bool:
    """
    Tell whether *variable* is a misspelt pool variable.

    Either it starts with `ENV_PREFIX` and is not one of ours, or it ends
    with one of our field names behind a prefix that is nearly ours
    (``EVENTSTORE_POL_MAX_SIZE``, ``EVENT_STORE_POOL_TIMEOUT``): a typo in
    the prefix alone must not make a setting silently vanish.
    """
    if variable in known:
        return False
    if variable.startswith(ENV_PREFIX):
        return True
    upper = variable.upper()
    for field in _PARSERS:
        suffix = field.upper()
        if upper.endswith(suffix) and upper != suffix:
            prefix = upper[: -len(suffix)]
            if difflib.SequenceMatcher(None, prefix, ENV_PREFIX).ratio() >= _NEAR:
                return True
    return False


_NEAR = 0.8
"""How alike a prefix must be to `ENV_PREFIX` to count as a misspelling of it."""


# Python's int() and float() also take "1_000" and digits of other scripts
# ("١٢"); a deployment's setting is read the way every other tool would.
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)


def _parse_int(raw: str) -> int:
    text = raw.strip()
    if not _WHOLE_NUMBER.fullmatch(text):
        raise ValueError("expected a whole number")
    return int(text)


def _parse_seconds(raw: str) -> float:
    text = raw.strip()
    value = float(text) if _DECIMAL.fullmatch(text) else math.nan
    if not math.isfinite(value):  # "1e999" is a decimal, and infinite
        raise ValueError("expected a finite number of seconds")
    return value


def _parse_optional_seconds(raw: str) -> float | None:
    if raw.strip().lower() == "none":
        return None
    return _parse_seconds(raw)


def _parse_text(raw: str) -> str:
    return raw


_PARSERS: dict[str, Callable[[str], Any]] = {
    "min_size": _parse_int,
    "max_size": _parse_int,
    "timeout": _parse_seconds,
    "max_waiting": _parse_int,
    "max_idle": _parse_seconds,
    "max_lifetime": _parse_seconds,
    "statement_timeout": _parse_optional_seconds,
    "lock_timeout": _parse_optional_seconds,
    "application_name": _parse_text,
    "prepared_statements": _parse_int,
}


def _field_named_in(message: str) -> str | None:
    # Validation messages start with the field name ("max_size must …");
    # the min > max message names min_size first.
    for name in sorted(_PARSERS, key=len, reverse=True):
        if message.startswith(name) or message.startswith(f"{name} ("):
            return name
    return None
