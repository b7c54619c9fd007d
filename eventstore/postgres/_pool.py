"""The store's own connection pool: its connection settings, and honest figures about it."""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias, TypeVar

import attrs
import psycopg
from psycopg_pool.base import AttemptWithBackoff

from eventstore._validation import MAX_SECONDS
from eventstore.health import PoolMetrics
from eventstore.postgres.config import PoolConfig

_T = TypeVar("_T")

Work: TypeAlias = Callable[[psycopg.Connection[Any]], _T]
"""What `Connections.call` runs with a connection."""

AsyncWork: TypeAlias = Callable[[psycopg.AsyncConnection[Any]], Awaitable[_T]]
"""What `AsyncConnections.call` awaits with a connection."""

__all__ = [
    "AsyncWork",
    "CappedBackoff",
    "Lending",
    "Work",
    "answer_wait",
    "called",
    "connection_kwargs",
    "direct_options",
    "libpq_connect_timeout",
    "millis",
    "pool_metrics",
    "pool_setting",
    "saturated_by_stats",
]


class CappedBackoff(AttemptWithBackoff):
    """
    psycopg_pool's reconnection backoff, its waits capped at `MAX_DELAY` seconds.

    While the server is down the pool tries each lost connection again
    after 1, 2, 4, 8 … seconds, each attempt holding a place of the pool:
    with every place waiting, a call cannot open another, so after an outage
    of a minute the store stayed unavailable for up to another half minute
    with the server back. Capped, the pool is whole again within about
    `MAX_DELAY` of the server's return, at the cost of one connection
    attempt per lost connection every `MAX_DELAY` seconds meanwhile.
    """

    MAX_DELAY = 2.0

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, self.MAX_DELAY)


def connection_kwargs(
    params: Mapping[str, Any], config: PoolConfig, connect_timeout: float
) -> dict[str, Any]:
    """
    Return the connection arguments of every connection the store's pool opens.

    Args:
        params: The DSN's parameters (for its ``options``).
        config: The pool's settings (timeouts, application name).
        connect_timeout: Seconds libpq may take to establish a connection.

    """
    # The server's side of dead-peer detection, first, so that the DSN's own
    # options (after them) can change it: a runner's host that vanishes then
    # loses its subscription lock in about 30 s, not the kernel's 2 hours.
    options = [_SERVER_KEEPALIVES]
    if params.get("options"):
        options.append(str(params["options"]))
    # Timestamps then arrive in UTC, and need no conversion per row.
    options.append("-c TimeZone=UTC")
    # The append statements rely on READ COMMITTED: a writer that waited
    # for a concurrent one re-checks the stream's new row and claims
    # nothing. A database or role that defaults to REPEATABLE READ or
    # SERIALIZABLE would make it fail instead (could not serialize access).
    options.append(r"-c default_transaction_isolation=read\ committed")
    # One plan per statement and connection, from the first call. By
    # default PostgreSQL plans each of the first five calls afresh and keeps
    # doing so on partitioned tables, where only a custom plan prunes
    # partitions at planning time: planning over 8 partitions then cost the
    # partitioned layout a third of its append rate and half its load rate.
    # Generic plans prune at execution instead; every statement of the store
    # is a keyed lookup whose generic plan uses its index (a test checks).
    options.append("-c plan_cache_mode=force_generic_plan")
    if config.statement_timeout is not None:
        options.append(f"-c statement_timeout={millis(config.statement_timeout)}")
    if config.lock_timeout is not None:
        options.append(f"-c lock_timeout={millis(config.lock_timeout)}")
    return {
        # The client's side: libpq's defaults where the DSN sets none.
        **{key: value for key, value in CLIENT_KEEPALIVES.items() if key not in params},
        "autocommit": True,
        # Text comes back as str whatever the database's encoding: a
        # SQL_ASCII database would otherwise hand psycopg bytes.
        "client_encoding": "UTF8",
        "application_name": config.application_name,
        "connect_timeout": libpq_connect_timeout(connect_timeout),
        "options": " ".join(options),
    }


CLIENT_KEEPALIVES: Mapping[str, str] = {
    # An idle or waiting connection whose server vanished (a failover, a
    # network that drops packets) is found dead in 15 + 3 x 5 s, and data
    # sent and never acknowledged ends the connection after 30 s, where the
    # kernel's defaults take hours and TCP's retransmissions about 15 minutes.
    # libpq ignores them on Unix-domain sockets.
    "keepalives": "1",
    "keepalives_idle": "15",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}
"""libpq's keepalive settings of the store's connections, unless the DSN sets them."""

_SERVER_KEEPALIVES = (
    " ".join(
        f"-c tcp_{name}={CLIENT_KEEPALIVES[name]}"
        for name in ("keepalives_idle", "keepalives_interval", "keepalives_count")
    )
    + f" -c tcp_user_timeout={CLIENT_KEEPALIVES['tcp_user_timeout']}"
)


def libpq_connect_timeout(seconds: float) -> str:
    """Return *seconds* as libpq's ``connect_timeout``: whole seconds, at least 2."""
    # libpq rounds down and treats 1 as 2; round up instead, so it never waits less.
    return str(max(2, math.ceil(seconds)))


def answer_wait(connect_timeout: float) -> float:
    """
    Return how long the store waits for the server's answer when it asks it directly.

    psycopg bounds the attempt to connect by *connect_timeout* (at least 2
    s); one more second lets the answer travel back.
    """
    # Never past the longest wait the platform takes (connect_timeout may be it).
    return min(max(connect_timeout, 2.0) + 1.0, MAX_SECONDS)


def millis(seconds: float) -> int:
    """Return *seconds* as the whole milliseconds PostgreSQL's timeouts take, at least 1."""
    return max(1, round(seconds * 1000))


@attrs.define
class Lending:
    """
    How many of the pool's connections the store has lent out, and how many callers wait.

    psycopg_pool counts a connection it is still trying to open in its size,
    so with the server down its figures read "2 in use" for a pool that holds
    none. The store's own pools (`StorePool`, `AsyncStorePool`) count every
    connection they lend instead.
    """

    lent: int = 0
    waiting: int = 0
    timeouts: int = 0
    """Waits the pool refused (its timeout passed, or too many waited); not the cancelled ones."""
    full_at_last_refusal: bool = False
    """Whether every connection was lent when a caller last waited in vain."""
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def start_waiting(self) -> None:
        """Count a caller that asks the pool for a connection."""
        with self._lock:
            self.waiting += 1

    def stop_waiting(self, *, got: bool, capacity: int, refused: bool = False) -> None:
        """
        Count that the caller's wait ended, with a connection when *got*.

        A wait the pool *refused* (a pool timeout) counts as a timeout and
        records whether all *capacity* connections were lent at that
        moment: connections given back a moment later must not make an
        exhausted pool look unreachable. A wait that ended otherwise (a
        cancelled task, a closed pool) is neither.
        """
        with self._lock:
            self.waiting -= 1
            if got:
                self.lent += 1
            elif refused:
                self.timeouts += 1
                self.full_at_last_refusal = self.lent >= capacity

    def returned(self) -> None:
        """Count a connection given back to the pool."""
        with self._lock:
            self.lent -= 1


def called(value: Any) -> Any:
    """
    Return a pool's ``conninfo`` or ``kwargs``: the value, or what its callable returns.

    psycopg_pool takes either as a value or as a callable (fresh credentials
    per connection); an async pool's callable may be a coroutine function,
    whose awaitable the caller awaits.
    """
    return value() if callable(value) else value


def pool_setting(value: Any) -> Any:
    """Return `called` *value*, an awaitable run to its end (the probe runs in a thread of its own)."""
    value = called(value)
    if inspect.isawaitable(value):
        awaitable = value

        async def wait() -> Any:
            return await awaitable

        value = asyncio.run(wait())
    return value


def direct_options(kwargs: Any, connect_timeout: float) -> dict[str, Any]:
    """Return the pool's connection arguments for a connection of its own, bounded by *connect_timeout*."""
    options = dict(kwargs or {})
    options.setdefault("connect_timeout", libpq_connect_timeout(connect_timeout))
    # A session of its own (a subscription's lock, its listener) idles for
    # hours: in a transaction, as a pool passed in may have its connections,
    # it would hold a snapshot back and meet idle_in_transaction_session_timeout.
    options["autocommit"] = True
    return options


def pool_metrics(
    stats: Mapping[str, int],
    *,
    min_size: int,
    max_size: int,
    lending: Lending | None,
) -> PoolMetrics:
    """
    Return the figures of a pool from its ``get_stats()``.

    Args:
        stats: ``ConnectionPool.get_stats()``.
        min_size: The pool's minimum size.
        max_size: The pool's maximum size.
        lending: The store's own count of lent connections and waiting
            callers, for a pool it opened (then *size* counts only
            connections that exist: idle or lent); ``None`` for a pool passed
            in, whose figures come from its stats alone.

    """
    available = stats.get("pool_available", 0)
    if lending is None:
        size = stats.get("pool_size", 0)
        in_use = max(size - available, 0)
        waiting = stats.get("requests_waiting", 0)
    else:
        in_use = max(lending.lent, 0)
        size = min(available + in_use, max_size)
        waiting = max(lending.waiting, 0)
    return PoolMetrics(
        min_size=min_size,
        max_size=max_size,
        size=size,
        available=available,
        in_use=in_use,
        waiting=waiting,
        utilization_pct=round(100.0 * in_use / max_size, 1) if max_size else 0.0,
        # psycopg_pool counts a cancelled wait among its errors too: a
        # service whose clients hang up would look as if it ran out.
        timeouts=stats.get("requests_errors", 0)
        if lending is None
        else lending.timeouts,
    )


def saturated_by_stats(
    stats: Mapping[str, int], max_size: int, seen_errors: int
) -> tuple[bool, int]:
    """
    Tell from a pool passed in whether a pool timeout means exhaustion.

    Its figures count connections still being opened in its size, so a
    full pool with nothing idle is ambiguous: failed connection attempts
    since the last look (*seen_errors*) mean "unreachable" instead.

    Returns:
        Whether the pool is exhausted, and the failed attempts counted so far
        (the next call's *seen_errors*).

    """
    errors = stats.get("connections_errors", 0)
    failing = errors > seen_errors
    saturated = (
        not failing
        and not stats.get("pool_available", 0)
        and stats.get("pool_size", 0) >= max_size
    )
    return saturated, errors
