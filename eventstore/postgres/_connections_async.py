"""
`AsyncConnections`: the store's pool, and everything between it and one call.

A call gets a connection, runs its work, and gives the connection back;
every driver error on the way becomes an eventstore error, chained to the
psycopg error that explains it. While the server is in doubt (before the
first connection, and after one failed) it is asked directly first
(`ServerProbe`), so a refused connection fails at once with the server's
reason rather than after the pool timeout. The SQL of a call is the store's
business, not this module's.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from typing import Any, Final, TypeVar

import attrs
import psycopg
import psycopg_pool
from psycopg.conninfo import make_conninfo
from psycopg_pool.base import AttemptWithBackoff

from eventstore.errors import (
    ConfigError,
    EventStoreError,
    StoreClosedError,
    StoreUnavailableError,
)
from eventstore.health import PoolMetrics
from eventstore.postgres import _sql
from eventstore.postgres._deadline import AsyncCutOff
from eventstore.postgres._dsn import SECRET_KEYS, parse_dsn, scrub_secrets
from eventstore.postgres._errors import (
    DRIVER_ERRORS,
    doubts_the_server,
    translate,
    unencodable,
    unreachable,
)
from eventstore.postgres._fork import track
from eventstore.postgres._idle_check import AsyncIdleCheck
from eventstore.postgres._pool import (
    AsyncWork,
    CappedBackoff,
    Lending,
    answer_wait,
    called,
    connection_kwargs,
    direct_options,
    pool_metrics,
    pool_setting,
    saturated_by_stats,
)
from eventstore.postgres._probe import AsyncServerProbe
from eventstore.postgres._sockets import has_unread
from eventstore.postgres.config import PoolConfig

__all__ = [
    "AsyncConnections",
    "AsyncStoreConnection",
    "AsyncStorePool",
    "append_cursor",
]

_T = TypeVar("_T")
_Connection = psycopg.AsyncConnection[Any]


class AsyncStoreConnection(psycopg.AsyncConnection[Any]):
    """A connection of a pool the store opened: it keeps a cursor per append statement."""

    append_cursors: dict[bytes, psycopg.AsyncCursor[Any]] | None = None


@attrs.frozen
class _KeepPrepared:
    """The pool's ``configure`` callback: each new connection keeps *count* statements prepared."""

    count: int

    async def __call__(self, conn: _Connection) -> None:
        # Each hash partition has its own statements (`_routing`): appends
        # of every kind, reads, versions, snapshots and loads prepared 12
        # statements per connection on the plain layout, 76 on 8 partitions
        # and 148 on 16, past psycopg's 100, which then re-plans the least
        # used ones on every turn. A prepared statement costs the server
        # ~47 kB only once it is used, so the room costs nothing unused.
        conn.prepared_max = self.count


_PIPELINE_OFF: Final = psycopg.pq.PipelineStatus.OFF

_APPEND_CURSORS: Final = 64
"""Append cursors a connection keeps before it starts afresh: every statement a workload uses, many times over."""


class AsyncStorePool(psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]]):
    """
    A pool the store opened: it counts what it lends, for `pool_metrics`, and bounds its checks.

    Args:
        answer_wait: Most seconds the check of one idle connection waits
            for the server's answer (see `check_connection`).
        args: Passed to `psycopg_pool.AsyncConnectionPool`.
        kwargs: Passed to `psycopg_pool.AsyncConnectionPool`.
    """

    def __init__(self, *args: Any, answer_wait: float, **kwargs: Any) -> None:
        self.lending = Lending()
        self.answer_wait = answer_wait
        super().__init__(*args, **kwargs)

    async def check_connection(self, conn: psycopg.AsyncConnection[Any]) -> None:  # type: ignore[override]
        """
        Check that *conn* still works, giving up after ``answer_wait`` seconds.

        psycopg_pool's own check sends an empty statement and waits for the
        answer without a limit: on a network that swallows packets, as long
        as TCP does, for each idle connection in turn. Cut off, the
        connection fails the check and the pool replaces it.

        Raises:
            psycopg.Error: The connection is broken, or sent no answer in time.
        """
        with AsyncCutOff(conn, self.answer_wait):
            await super().check_connection(conn)

    async def _add_connection(
        self, attempt: AttemptWithBackoff | None, growing: bool = False
    ) -> None:
        # psycopg_pool's own hook for (re)connecting: the same, with waits
        # between attempts capped (`CappedBackoff`).
        if attempt is None:
            attempt = CappedBackoff(timeout=self.reconnect_timeout)
        await super()._add_connection(attempt, growing)

    async def getconn(
        self, timeout: float | None = None
    ) -> psycopg.AsyncConnection[Any]:
        """Lend a connection (see `psycopg_pool.AsyncConnectionPool.getconn`), counting it."""
        lending = self.lending
        lending.start_waiting()
        conn: psycopg.AsyncConnection[Any] | None = None
        refused = False
        try:
            conn = await super().getconn(timeout)
        except (psycopg_pool.PoolTimeout, psycopg_pool.TooManyRequests):
            refused = True
            raise
        finally:
            lending.stop_waiting(
                got=conn is not None, capacity=self.max_size, refused=refused
            )
        return conn

    async def putconn(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Take a lent connection back (see `psycopg_pool.AsyncConnectionPool.putconn`)."""
        try:
            await super().putconn(conn)
        finally:
            self.lending.returned()


def append_cursor(conn: _Connection, statement: bytes) -> psycopg.AsyncCursor[Any]:
    """Return the cursor *conn* keeps for the append *statement* (a new one on a caller's pool)."""
    # Creating a cursor costs ~30 µs of client CPU, a tenth of an append;
    # the append cursor's results are one small row per event, so keeping
    # it (and its last result) costs nothing worth mentioning. One per
    # statement: psycopg keeps a cursor's dumpers and loaders only while it
    # runs the same query, and appends alternate between statements (a
    # stream's partition, a new or an existing stream): 17 us of client CPU
    # per append to streams across 8 partitions with one cursor for all.
    if not isinstance(conn, AsyncStoreConnection):
        return conn.cursor()
    cursors = conn.append_cursors
    if cursors is None or len(cursors) >= _APPEND_CURSORS:
        cursors = conn.append_cursors = {}
    cursor = cursors.get(statement)
    if cursor is None or cursor.closed:
        cursor = cursors[statement] = conn.cursor()
    return cursor


class AsyncConnections:
    """
    A pool and the calls made on it.

    Args:
        pool: The pool calls borrow from.
        owned: The store opened *pool* (and closes it); its `StorePool`
            counts what it lends.
        secrets: The DSN's password and key passphrase, scrubbed from every message.
        connect_timeout: libpq's limit for opening one connection.
    """

    def __init__(
        self,
        pool: psycopg_pool.AsyncConnectionPool[Any],
        *,
        owned: bool,
        secrets: tuple[str, ...] = (),
        connect_timeout: float,
    ) -> None:
        self.pool = pool
        self.owned = owned
        self.closed = False
        # The process the pool's connections belong to; another one, forked
        # from it, inherited this object (`_fork`).
        self._pid = os.getpid()
        self._inherited = False
        track(self)
        self._lending: Lending | None = (
            pool.lending if isinstance(pool, AsyncStorePool) else None
        )
        self._secrets = secrets
        self._connect_timeout = connect_timeout
        self._seen_connection_errors = 0
        # Until a connection succeeds, and after one failed, the server is
        # asked directly before waiting on the pool.
        self._suspect = True
        self._probe = AsyncServerProbe(self._connect_directly)
        self._idle_check = AsyncIdleCheck(pool)
        if True:  # ASYNC
            # A pool the store opened is opened by its first call: an async
            # pool opens in a coroutine, and a constructor cannot await.
            self._unopened = False
            # The event loop it opened on: its workers and timers live there.
            self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def open(
        cls,
        dsn: str,
        config: PoolConfig,
        *,
        name: str,
        connect_timeout: float,
    ) -> tuple[AsyncConnections, str]:
        """
        Open a pool of the store's own from *dsn*.

        Returns:
            The connections, and the DSN without its secrets (for reprs).

        Raises:
            ConfigError: *dsn* cannot be parsed (the message says why,
                never the password).

        """
        params = parse_dsn(dsn)
        # Neither secret stays in the DSN shown in reprs, and both are scrubbed.
        secrets = tuple(str(params.pop(key, "") or "") for key in SECRET_KEYS)
        pool = AsyncStorePool(
            dsn,
            connection_class=AsyncStoreConnection,
            kwargs=connection_kwargs(params, config, connect_timeout),
            configure=_KeepPrepared(config.prepared_statements),
            min_size=config.min_size,
            max_size=config.max_size,
            timeout=config.timeout,
            max_waiting=config.max_waiting,
            max_idle=config.max_idle,
            max_lifetime=config.max_lifetime,
            name=name,
            open=False,
            answer_wait=answer_wait(connect_timeout),
        )
        connections = cls(
            pool, owned=True, secrets=secrets, connect_timeout=connect_timeout
        )
        if True:  # ASYNC
            connections._unopened = True
        else:
            pool.open()  # type: ignore[unreachable]
        return connections, make_conninfo("", **params)

    async def call(
        self,
        work: AsyncWork[_T],
        *,
        retry: bool,
        timeout: float | None = None,
    ) -> _T:
        """
        Run *work* on a pooled connection, translating every driver error.

        A connection found broken (server restart, killed backend) makes the
        pool check its idle connections, so the next call gets a live one;
        with *retry* (reads) the call is repeated once on it. The call waits
        for that check only as long as it would for the server's answer to a
        direct connection (`IdleCheck`).

        Args:
            work: What to do with the connection.
            retry: Repeat once after a broken connection.
            timeout: Most seconds to wait for a connection; default: the
                pool's timeout (and ``connect_timeout`` for the direct ask).

        Raises:
            EventStoreError: What the driver error stands for (see
                `translate`), ``from`` the psycopg error that explains it.

        """
        attempts = 2 if retry else 1
        if self.closed or self._inherited:
            # A read stepped after close() comes here: the pool must not
            # open again (an async one never opened counts as closed).
            raise self._unusable()
        if True:  # ASYNC
            if self._unopened:
                # Once: a call that comes while this one awaits finds it open.
                self._unopened = False
                self._loop = asyncio.get_running_loop()
                await self.pool.open()
            self.check_loop()
        for attempt in range(1, attempts + 1):
            if self._suspect:
                await self._refuse_if_unreachable(timeout)
            conn: _Connection | None = None
            try:
                # getconn/putconn rather than connection(): no commit/rollback
                # dance on an autocommit connection, a few µs per call.
                conn = await self._live_connection(timeout)
                self._suspect = False
                try:
                    return await work(conn)
                except UnicodeEncodeError as exc:
                    # psycopg writing text in a caller pool's encoding: a
                    # value of the call's, not the server's trouble.
                    if conn.info.encoding == "utf-8":
                        raise
                    encoding = conn.info.parameter_status("client_encoding")
                    raise unencodable(exc, encoding or conn.info.encoding) from exc
                finally:
                    await self._give_back(conn)
            except DRIVER_ERRORS as exc:
                if conn is not None and conn.broken:
                    self._doubt_server()
                    # As long as the server's own answer would be waited for.
                    await self._idle_check.run(self._probe_wait(timeout))
                    if attempt < attempts:
                        continue
                error, cause = await self._translate(exc, timeout)
                if isinstance(error, StoreUnavailableError) and doubts_the_server(exc):
                    self._doubt_server()
                raise error from cause
        raise AssertionError("unreachable")  # pragma: no cover

    async def _live_connection(self, timeout: float | None) -> _Connection:
        """Lend a connection, replacing one the server ended while it sat idle (`_replace_ended`)."""
        conn: _Connection = await self.pool.getconn(timeout)
        # A look at the socket that waits for nothing (about a µs), on the
        # store's own pool only: a caller's connections may be spoken to for
        # reasons of the caller's (a LISTEN).
        if self._lending is not None and has_unread(conn):
            return await self._replace_ended(conn, timeout)
        return conn

    async def _replace_ended(
        self, conn: _Connection, timeout: float | None
    ) -> _Connection:
        """
        Replace *conn*, a connection whose session the server ended while it sat in the pool.

        Its reason waits on the socket (``idle_session_timeout``,
        ``pg_terminate_backend``, a restart): sent on it, an append would
        fail though it certainly wrote nothing. As for a connection found
        broken, the pool's idle connections are checked (the others were
        likely ended too) and, the server in doubt, asked for directly;
        then another connection is taken.

        Raises:
            StoreUnavailableError: The server refuses connections now.
        """
        await conn.close()
        await self.pool.putconn(conn)
        self._doubt_server()
        await self._idle_check.run(self._probe_wait(timeout))
        await self._refuse_if_unreachable(timeout)
        replacement: _Connection = await self.pool.getconn(timeout)
        return replacement

    async def _give_back(self, conn: _Connection) -> None:
        """Return *conn* to the pool, closed (so discarded) if a pipeline was left half-set."""
        if conn.pgconn.pipeline_status != _PIPELINE_OFF:
            # Cancelled (or interrupted) as psycopg entered or left a
            # pipeline: the pool, which looks at the transaction status
            # only, would lend it on to fail every streamed read.
            await conn.close()
        await self.pool.putconn(conn)

    async def dedicated(self) -> _Connection:
        """
        Open a connection with the pool's settings, outside the pool, for a session of its own.

        A subscription holds its advisory lock on one: the lock lasts as long
        as the session, and no pooled connection is taken from the store.

        Raises:
            StoreUnavailableError: The server refused it, with its reason.
        """
        if self.closed or self._inherited:
            raise self._unusable()
        conninfo = called(self.pool.conninfo)
        kwargs = called(self.pool.kwargs)
        if True:  # ASYNC
            # An async pool's callables may be coroutine functions.
            if inspect.isawaitable(conninfo):
                conninfo = await conninfo
            if inspect.isawaitable(kwargs):
                kwargs = await kwargs
        options = direct_options(kwargs, self._connect_timeout)
        try:
            conn = await psycopg.AsyncConnection.connect(conninfo, **options)
        except DRIVER_ERRORS as exc:
            raise unreachable(exc, scrub=self.scrub) from exc
        try:
            if conn.info.server_version >= _sql.IDLE_SESSION_TIMEOUT_SINCE:
                # Its session is meant to sit idle (a lock held, a LISTEN):
                # the server's idle_session_timeout would end it every time.
                await conn.execute(_sql.NO_IDLE_SESSION_TIMEOUT)
        except DRIVER_ERRORS as exc:
            await conn.close()
            raise unreachable(exc, scrub=self.scrub) from exc
        except BaseException:
            await conn.close()
            raise
        return conn

    def scrub(self, text: str) -> str:
        """Return *text* without the DSN's password or key passphrase."""
        return scrub_secrets(text, self._secrets)

    def metrics(self) -> PoolMetrics:
        """Return the pool's figures (exact for the store's own pool)."""
        return pool_metrics(
            self.pool.get_stats(),
            min_size=self.pool.min_size,
            max_size=self.pool.max_size,
            lending=self._lending,
        )

    def inherit(self) -> None:
        """Mark the connections as a forked child's copy of its parent's: unusable, never closed here."""
        self._inherited = True

    def _unusable(self) -> EventStoreError:
        """Return why calls are refused: the store is closed, or a forked child's copy."""
        if self.closed:
            return StoreClosedError("the store is closed")
        return ConfigError(
            f"this store was created in process {self._pid}, before it forked "
            f"this one ({os.getpid()}): its connections are that process's "
            "sessions, which two processes cannot share. Create the store in each "
            "worker after the fork (gunicorn: without --preload, or in post_fork; "
            "multiprocessing: in the worker, or the 'spawn' start method)"
        )

    async def close(self) -> None:
        """Mark the connections closed, and close the pool if the store opened it."""
        if self._inherited:
            # The sessions are the parent's: closing them here would end them
            # there too. Dropped, psycopg leaves them be.
            self.closed = True
            return
        self.closed = True
        if True:  # ASYNC
            self._unopened = False
            await self._idle_check.stop()
        if self.owned:
            await self.pool.close()

    if True:  # ASYNC

        def check_loop(self) -> None:
            """Raise `ConfigError` unless this runs on the event loop the store's own pool opened on."""
            if self._inherited:
                return  # a forked child's: its close() touches nothing
            if self._loop is not None and asyncio.get_running_loop() is not self._loop:
                # psycopg_pool's workers and timers stay on the loop it opened
                # on: calls from another seem to work until that loop is
                # gone, and close() then fails with "Event loop is closed".
                raise ConfigError(
                    "this AsyncPostgresEventStore opened its pool on another event "
                    "loop; use and close a store on the loop it first ran on (one "
                    "store per loop, e.g. per test with per-test loops)"
                )

    def _doubt_server(self) -> None:
        self._suspect = True
        self._probe.forget()

    async def _refuse_if_unreachable(self, timeout: float | None) -> None:
        """Raise `StoreUnavailableError` with the server's reason if it refuses connections."""
        error = await self._probe.check(self._probe_wait(timeout))
        if error is not None:
            raise unreachable(error, scrub=self.scrub) from error

    def _probe_wait(self, timeout: float | None) -> float:
        return answer_wait(self._connect_timeout) if timeout is None else timeout

    def _connect_directly(self) -> None:
        """Open and close one connection with the pool's own settings."""
        # psycopg_pool accepts callables for both (fresh credentials per connection).
        options = direct_options(pool_setting(self.pool.kwargs), self._connect_timeout)
        psycopg.connect(pool_setting(self.pool.conninfo), **options).close()

    async def _translate(
        self, exc: BaseException, timeout: float | None
    ) -> tuple[EventStoreError, BaseException]:
        """Return the error standing for *exc*, and the driver error to chain it to."""
        connect_error: BaseException | None = None
        saturated = False
        if isinstance(exc, psycopg_pool.PoolTimeout):
            saturated, connect_error = await self._why_no_connection(timeout)
        error = translate(
            exc,
            scrub=self.scrub,
            pool_saturated=saturated,
            pool_closed_by_us=self.closed,
            connect_error=connect_error,
        )
        return error, exc if connect_error is None else connect_error

    async def _why_no_connection(
        self, timeout: float | None
    ) -> tuple[bool, BaseException | None]:
        """
        Tell why the pool gave no connection: exhaustion, or an unreachable server.

        Returns:
            Whether every connection is lent out (exhaustion), and the
            server's reason when a direct connection attempt fails.

        """
        if self._lending is not None and self._lending.full_at_last_refusal:
            return True, None  # exhausted: no need to ask the server
        error = await self._probe.check(self._probe_wait(timeout))
        if error is not None:
            return False, error
        if self._lending is not None:
            return False, None
        saturated, self._seen_connection_errors = saturated_by_stats(
            self.pool.get_stats(), self.pool.max_size, self._seen_connection_errors
        )
        return saturated, None
