"""
The one boundary where psycopg and psycopg_pool errors become eventstore errors.

Every driver error a `PostgresEventStore` meets passes through `translate`,
and the caller raises the result ``from`` the original, so ``__cause__``
keeps the details. Messages are scrubbed of the DSN's password.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors

from eventstore.errors import (
    ConfigError,
    EventStoreError,
    InvalidArgumentError,
    PoolExhaustedError,
    StoreClosedError,
    StoreTimeoutError,
    StoreUnavailableError,
)

__all__ = [
    "DRIVER_ERRORS",
    "ENDED_BY_ITS_OWN",
    "doubts_the_server",
    "ended_transaction",
    "passes_whatever_the_event",
    "translate",
    "unencodable",
    "unreachable",
]

DRIVER_ERRORS: tuple[type[Exception], ...] = (psycopg.Error,)
"""Exception classes the boundary catches (psycopg_pool's errors subclass psycopg's)."""


_TIMEOUTS: Final = (
    pg_errors.QueryCanceled,
    pg_errors.LockNotAvailable,
    pg_errors.TransactionTimeout,  # PostgreSQL 17's transaction_timeout
)
"""What a statement, lock or transaction timeout raises."""

_UNAVAILABLE: Final = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    # After a failover, a DSN that still reaches the old primary, now a
    # standby: an outage, which the new primary's address ends.
    pg_errors.ReadOnlySqlTransaction,
    pg_errors.IdleInTransactionSessionTimeout,
)
"""What a server that cannot take the statement now raises (psycopg files the last two as internal)."""


def unreachable(
    exc: BaseException, *, scrub: Callable[[str], str]
) -> StoreUnavailableError:
    """
    Return the error for a connection the server refused, or that got no answer.

    Args:
        exc: What psycopg raised connecting (the server's reason is in it).
        scrub: Removes the DSN's password from a message.

    """
    detail = scrub(str(exc).strip() or type(exc).__name__)
    return StoreUnavailableError(f"cannot connect to PostgreSQL: {detail}")


def unencodable(exc: UnicodeEncodeError, client_encoding: str) -> InvalidArgumentError:
    """
    Return the error for a value that a connection's client encoding cannot carry.

    The store's own pool talks UTF8; a pool passed in may use another
    encoding (LATIN1 …), and psycopg then cannot write text outside it:
    nothing of the call is sent (a transaction it opened rolls back).

    Args:
        exc: What psycopg raised dumping the value.
        client_encoding: The connection's ``client_encoding``.

    """
    text = exc.object[exc.start : exc.end]
    return InvalidArgumentError(
        f"{text!r} cannot be sent over a connection whose client_encoding is "
        f"{client_encoding}; pass a pool whose connections use UTF8, as the "
        "store's own pool does"
    )


def translate(  # noqa: PLR0911, PLR0912  # one return per error family reads best as a flat list
    exc: BaseException,
    *,
    scrub: Callable[[str], str],
    pool_saturated: bool,
    pool_closed_by_us: bool,
    connect_error: BaseException | None = None,
) -> EventStoreError:
    """
    Return the eventstore error standing for the driver error *exc*.

    Args:
        exc: A psycopg or psycopg_pool exception.
        scrub: Removes the DSN's password from a message.
        pool_saturated: Every connection of the pool is lent out, so a
            pool timeout means exhaustion rather than an unreachable server.
        pool_closed_by_us: The store closed its own pool.
        connect_error: Why a direct connection attempt just failed, if it
            did: a pool timeout then reports the server's reason.

    """
    detail = scrub(str(exc).strip() or type(exc).__name__)
    if isinstance(exc, psycopg_pool.TooManyRequests):
        return PoolExhaustedError(
            f"too many requests waiting for a connection: {detail}"
        )
    if isinstance(exc, psycopg_pool.PoolTimeout):
        if pool_saturated:
            return PoolExhaustedError(
                f"no connection became free within the pool timeout: {detail}"
            )
        if connect_error is not None:
            return unreachable(connect_error, scrub=scrub)
        return StoreUnavailableError(
            f"could not get a connection to PostgreSQL within the pool timeout "
            f"(is the server reachable?): {detail}"
        )
    if isinstance(exc, psycopg_pool.PoolClosed):
        if pool_closed_by_us:
            return StoreClosedError("PostgresEventStore is closed")
        return StoreUnavailableError(f"the connection pool is closed: {detail}")
    if isinstance(exc, _TIMEOUTS):
        return StoreTimeoutError(f"PostgreSQL cancelled the statement: {detail}")
    if _v1_event_id_key(exc):
        return ConfigError(
            "the schema predates migration 2, where event ids became unique per "
            "stream: an id stored in another stream is refused; run "
            f"PostgresEventStore.migrate(): {detail}"
        )
    if isinstance(exc, pg_errors.UndefinedTable | pg_errors.InvalidSchemaName):
        return ConfigError(
            "the event store tables are missing; run PostgresEventStore.migrate() "
            f"(health() names a table gone from a migrated schema): {detail}"
        )
    if isinstance(exc, pg_errors.DataError):
        return InvalidArgumentError(f"PostgreSQL refused a value: {detail}")
    if _limit_exceeded(exc):
        # psycopg files class 54 under OperationalError, as if the server
        # were in trouble; it is the statement's values, refused every time.
        return InvalidArgumentError(
            f"PostgreSQL refused a value as too large: {detail}"
        )

    if _rolled_back(exc):
        return StoreUnavailableError(
            "PostgreSQL rolled the transaction back (a deadlock or a serialization "
            f"failure; nothing of it was stored): try again: {detail}"
        )
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailableError(f"PostgreSQL is unavailable: {detail}")
    return EventStoreError(f"PostgreSQL error: {detail}")


def _limit_exceeded(exc: BaseException) -> bool:
    # Class 54, program limit exceeded: a jsonb value or an array too large,
    # a statement too complex.
    return _sqlstate_class(exc) == "54"


def _sqlstate_class(exc: BaseException) -> str:
    # By SQLSTATE: psycopg's exception classes follow the DB-API's kinds,
    # which file classes 40 and 54 under OperationalError.
    return (exc.sqlstate or "")[:2] if isinstance(exc, psycopg.Error) else ""


def _v1_event_id_key(exc: BaseException) -> bool:
    # Migration 1's global key on event ids, which migration 2 replaces by
    # (stream_id, event_id): a schema not migrated yet still has it.
    return (
        isinstance(exc, pg_errors.UniqueViolation)
        and exc.diag.table_name == "events"
        and exc.diag.constraint_name == "events_event_id_key"
    )


def doubts_the_server(exc: BaseException) -> bool:
    """
    Whether the driver error *exc* puts the server in doubt, so the next call asks it directly first.

    A transaction the server rolled back (class 40: a deadlock, a
    serialization failure) came from a server that answered.
    """
    return not _rolled_back(exc)


def _rolled_back(exc: BaseException) -> bool:
    # Class 40 by SQLSTATE: psycopg files 40001 and 40P01 under
    # OperationalError directly, not under TransactionRollback.
    return _sqlstate_class(exc) == "40"


_PASSING_CLASSES: Final = frozenset({"40", "53", "57"})
_QUERY_CANCELED: Final = "57014"  # a statement or lock timeout of the handler's own


def passes_whatever_the_event(exc: psycopg.Error) -> bool:
    """Whether *exc*, met by a subscription handler's statement, says more about the server than the event."""
    # A deadlock or serialization failure (class 40), a server short of
    # disk or memory (53), a shutdown or a terminated session (57, but for
    # the handler's own statement timeout): none fails again for the
    # same event once it has passed, so it is the store's trouble.
    # By SQLSTATE: psycopg's classes follow the DB-API's kinds, not these.
    state = exc.sqlstate or ""
    return state[:2] in _PASSING_CLASSES and state != _QUERY_CANCELED


_IDLE_IN_TRANSACTION_TIMEOUT: Final = "25P03"


def idled_out(exc: BaseException) -> bool:
    """Whether *exc* says the server ended the session for idling in its transaction (``idle_in_transaction_session_timeout``)."""
    return (
        isinstance(exc, psycopg.Error) and exc.sqlstate == _IDLE_IN_TRANSACTION_TIMEOUT
    )


IDLED_OUT: Final = (
    "spent longer between two statements than the server's "
    "idle_in_transaction_session_timeout, and the server ended its session: "
    "nothing of the batch committed. Keep slow work out of a transactional "
    "handler, or raise the timeout for the store's role"
)
"""What a handler did that kept its transaction idle until the server ended it, as the end of a sentence."""


_INTRANS: Final = psycopg.pq.TransactionStatus.INTRANS
_INERROR: Final = psycopg.pq.TransactionStatus.INERROR


ENDED_BY_ITS_OWN: Final = (
    "ended its transaction with a COMMIT or ROLLBACK of its own: its writes "
    "and the checkpoint no longer commit together, so the subscription "
    "stops. Leave the transaction to the subscription; raise to refuse a batch"
)
"""What `ended_transaction` says of a transaction the handler ended: also when another began after it."""


def ended_transaction(conn: Any, *, raised: bool) -> str | None:
    """
    Say how a handler ended the transaction it was given on *conn*, if its status shows it.

    A transaction ended and another begun after it (a ``BEGIN`` of the
    handler's, or psycopg's own on a connection that is not autocommit)
    reads as still open here: the caller compares transaction ids for that,
    and says `ENDED_BY_ITS_OWN`.

    Args:
        conn: The connection, after the handler returned or raised.
        raised: The handler raised: an aborted transaction is then the
            failed statement's, not a misuse.

    Returns:
        ``None`` while the transaction is still the subscription's (or the
        connection broke, the server's trouble); else what the handler did,
        as the end of a sentence that names it.
    """
    if conn.broken:
        return None
    if conn.closed:
        return "closed its connection"
    status = conn.info.transaction_status
    if status == _INTRANS or (raised and status == _INERROR):
        return None
    if status == _INERROR:
        return (
            "caught a failed statement of its own and went on in the aborted "
            "transaction, which commits nothing: run such a statement in "
            "`with conn.transaction():` (a savepoint), or let its error out"
        )
    return ENDED_BY_ITS_OWN
