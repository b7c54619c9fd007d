"""What `AsyncPostgresEventStore` does for subscriptions: filtered pages, checkpoints, parking, locks, wake-ups."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import attrs
import psycopg
from psycopg import pq

from eventstore._subscribing import (
    AsyncTransactionWork,
    LogFilter,
    LogPage,
    ParkedEvent,
    page_of,
)
from eventstore.errors import (
    EventStoreError,
    HandlerTransactionError,
    StoreUnavailableError,
    SubscriptionConflictError,
)
from eventstore.events import LogPosition, RecordedEvent
from eventstore.health import LogHolder
from eventstore.postgres import _sql
from eventstore.postgres._connections_async import (
    AsyncConnections,
    AsyncStoreConnection,
)
from eventstore.postgres._errors import (
    ENDED_BY_ITS_OWN,
    IDLED_OUT,
    ended_transaction,
    idled_out,
    passes_whatever_the_event,
)
from eventstore.postgres._queries_async import execute as _execute
from eventstore.postgres._queries_async import fetchall as _fetchall
from eventstore.postgres._queries_async import fetchall_within as _fetchall_within
from eventstore.postgres._reading import (
    checkpoint_params,
    log_behind_params,
    log_page_params,
    park_params,
    read_all_params,
    unpark_params,
)
from eventstore.postgres._sockets import has_unread, socket_ready

__all__ = ["AsyncAdvisoryLock", "AsyncListener", "AsyncSubscriptionHooks"]

_Connection = psycopg.AsyncConnection[Any]

LOCK_PROBE_EVERY: Final = 0.5
"""Most seconds between two round trips that check a subscription lock's session."""

LOCK_PROBE_WAIT: Final = 10.0
"""Most seconds a lock's probe waits for the server before the lock counts as lost."""

LOCK_RELEASE_WAIT: Final = 1.0
"""Most seconds a stopping runner waits for the server to release its lock before it hangs up."""


@attrs.define
class AsyncAdvisoryLock:
    """A subscription's session advisory lock, held on a connection of its own."""

    conn: _Connection
    probed_at: float = attrs.field(factory=time.monotonic)

    async def alive(self) -> bool:
        """
        Whether the session, and so the lock, still lives.

        One round trip at most every `LOCK_PROBE_EVERY` seconds; between
        them a look at the socket, which costs none: the session idles, so
        the server sends it nothing unless it ends it (a terminated backend,
        a shutdown, a timeout), and whatever came is checked at once.
        """
        if self.conn.closed:
            return False
        if time.monotonic() - self.probed_at < LOCK_PROBE_EVERY and not has_unread(
            self.conn
        ):
            return True
        # A server that does not answer within `LOCK_PROBE_WAIT` (a network
        # that drops packets, which TCP takes many minutes to give up on)
        # counts as gone: the runner stands by, and a stop is not held up.
        if not await _answered_within(self.conn, _sql.LOCK_PROBE, LOCK_PROBE_WAIT):
            await self.release()
            return False
        self.probed_at = time.monotonic()
        return True

    async def release(self) -> None:
        """Release the lock, and end its session; wait at most `LOCK_RELEASE_WAIT` seconds for the server."""
        try:
            if not self.conn.closed and not self.conn.broken:
                # Closing alone would release it too, but only once the
                # server's backend has ended: a moment later. A server that
                # does not answer in time gets only the close.
                await _answered_within(
                    self.conn, _sql.SUBSCRIPTION_UNLOCK, LOCK_RELEASE_WAIT
                )
        finally:
            await self.conn.close()


@attrs.define
class AsyncListener:
    """A session listening on the schema's channel, on a connection of its own."""

    conn: _Connection

    async def wait(self, timeout: float) -> bool:
        """Wait up to *timeout* seconds for a notification; tell whether one came."""
        heard = False
        try:
            async for _ in self.conn.notifies(timeout=timeout, stop_after=1):
                heard = True
            if heard:
                # Those queued behind it were sent before the read that
                # follows, too: one wake-up answers them all.
                async for _ in self.conn.notifies(timeout=0):
                    pass
        except psycopg.Error as exc:
            await self.close()
            raise StoreUnavailableError(
                f"the subscription's listening session ended: {exc}"
            ) from exc
        return heard

    async def close(self) -> None:
        """End the session."""
        await self.conn.close()


class AsyncSubscriptionHooks:
    """
    The subscription hooks of `AsyncPostgresEventStore` (see `AsyncEventStore`).

    A mixin: the store gives it its statements, schema, connections and
    its ``read_all``.
    """

    _sql: _sql.Statements
    _schema: str
    _connections: AsyncConnections

    if TYPE_CHECKING:

        async def _read_all(
            self, after: LogPosition | None, limit: int
        ) -> list[RecordedEvent]: ...

    async def _read_log_page(
        self, after: LogPosition | None, limit: int, log_filter: LogFilter
    ) -> LogPage:
        if log_filter.passes_all:
            # read_all itself: a fifth cheaper than the filtering statement,
            # which needs a marker row of where its scan ended.
            return page_of(await self._read_all(after, limit), log_filter, limit)
        params = log_page_params(after, limit, log_filter)
        rows = await self._connections.call(
            lambda conn: _fetchall(conn, self._sql.log_page, params), retry=True
        )
        return _sql.log_page_from_rows(rows, limit)

    async def _log_behind(
        self, after: LogPosition | None, log_filter: LogFilter, cap: int
    ) -> tuple[int, datetime | None]:
        params = log_behind_params(after, log_filter, cap)
        rows = await self._connections.call(
            lambda conn: _fetchall(conn, self._sql.log_behind, params), retry=True
        )
        return int(rows[0][0]), rows[0][1]

    async def _reset_checkpoint(
        self,
        name: str,
        member: str,
        to: LogPosition | None,
        work: AsyncTransactionWork | None,
    ) -> None:
        key = {"name": name, "member": member}

        async def run(conn: _Connection) -> None:
            async with _handed_over(conn, work is not None):
                # The checkpoint first, as a batch does: a batch in flight
                # makes the reset wait for its commit (then on_reset clears
                # what it wrote); a batch after waits for the reset, then
                # fails its compare-and-set before its handler runs.
                if to is None:
                    # Upserted, then deleted: the upsert waits for a first
                    # batch creating the checkpoint meanwhile, where a bare
                    # DELETE would find no row, and that batch's checkpoint
                    # would outlive the reset that cleared its writes.
                    await conn.execute(
                        self._sql.reset_checkpoint,
                        {**key, "transaction_id": 0, "position": 0},
                    )
                    await conn.execute(self._sql.delete_checkpoint, key)
                else:
                    await conn.execute(
                        self._sql.reset_checkpoint,
                        {
                            **key,
                            "transaction_id": to.transaction_id,
                            "position": to.position,
                        },
                    )
                if work is not None:
                    await _as_the_handlers(work, "on_reset")(conn)

        await self._connections.call(run, retry=False)

    async def _park(
        self,
        name: str,
        member: str,
        event: RecordedEvent,
        error: str,
        attempts: int,
        *,
        still_parked: bool = False,
    ) -> None:
        params = park_params(name, member, event, error, attempts)
        statement = self._sql.repark if still_parked else self._sql.park
        await self._connections.call(
            lambda conn: _execute(conn, statement, params), retry=True
        )

    async def _park_in_transaction(
        self,
        name: str,
        member: str,
        event: RecordedEvent,
        error: str,
        attempts: int,
        *,
        expected: LogPosition | None,
    ) -> None:
        park = park_params(name, member, event, error, attempts)

        async def work(conn: _Connection) -> None:
            await conn.execute(self._sql.park, park)

        # Parked and past it together: apart, a crash between the two would
        # hand the event over again, and, taken then, it would stay parked
        # for a replay to apply a second time.
        await self._move_checkpoint_with(name, member, expected, event.position, work)

    async def _parked(
        self, name: str, member: str, after: LogPosition | None, limit: int
    ) -> list[ParkedEvent]:
        params = {"name": name, "member": member, **read_all_params(after, limit)}
        params.setdefault("transaction_id", 0)
        params.setdefault("position", 0)
        rows = await self._connections.call(
            lambda conn: _fetchall(conn, self._sql.parked, params), retry=True
        )
        return _sql.parked_from_rows(rows)

    async def _parked_count(self, name: str, member: str) -> int:
        params = {"name": name, "member": member}
        rows = await self._connections.call(
            lambda conn: _fetchall(conn, self._sql.parked_count, params), retry=True
        )
        return int(rows[0][0])

    async def _unpark(
        self, name: str, member: str, stream_id: str, version: int
    ) -> None:
        params = unpark_params(name, member, stream_id, version)
        await self._connections.call(
            lambda conn: _execute(conn, self._sql.unpark, params), retry=True
        )

    async def _replay_in_transaction(
        self,
        name: str,
        member: str,
        stream_id: str,
        version: int,
        work: AsyncTransactionWork,
    ) -> bool:
        params = unpark_params(name, member, stream_id, version)

        async def run(conn: _Connection) -> bool:
            async with _handed_over(conn, True):
                # Unparked first: a second replay of the event waits on its
                # row, then finds it gone and applies nothing.
                cursor = await conn.execute(self._sql.unpark, params)
                if not cursor.rowcount:
                    return False
                await _as_the_handlers(work)(conn)
            return True

        return await self._connections.call(run, retry=False)

    async def _lock_subscription(
        self, name: str, member: str
    ) -> AsyncAdvisoryLock | None:
        params = {
            "seed": _sql.SUBSCRIPTION_LOCK_SEED,
            "key": _sql.subscription_lock_key(self._schema, name, member),
        }
        # A standby tries every poll: it asks on a pooled connection first,
        # and opens a session (a new backend on the server) only when the
        # lock looks free, so that standing by costs no connection churn.
        held = await self._connections.call(
            lambda conn: _fetchall(conn, self._sql.subscription_lock_held, params),
            retry=True,
        )
        if held and held[0][0]:
            return None
        conn = await self._connections.dedicated()
        try:
            cursor = await conn.execute(self._sql.try_subscription_lock, params)
            row = await cursor.fetchone()
        except psycopg.Error as exc:
            await conn.close()
            raise StoreUnavailableError(
                f"the subscription's lock session ended: {exc}"
            ) from exc
        except BaseException:
            await conn.close()
            raise
        if row is None or not row[0]:  # taken meanwhile by another runner
            await conn.close()
            return None
        return AsyncAdvisoryLock(conn)

    async def _deliver_in_transaction(
        self,
        name: str,
        member: str,
        expected: LogPosition | None,
        new: LogPosition,
        work: AsyncTransactionWork,
    ) -> None:
        await self._move_checkpoint_with(
            name, member, expected, new, _as_the_handlers(work)
        )

    async def _move_checkpoint_with(
        self,
        name: str,
        member: str,
        expected: LogPosition | None,
        new: LogPosition,
        work: AsyncTransactionWork,
    ) -> None:
        """Move the checkpoint from *expected* to *new* and run *work*, in one transaction."""
        params = checkpoint_params(name, member, expected, new)
        key = {"name": name, "member": member}

        async def run(conn: _Connection) -> None:
            async with _handed_over(conn, True):
                # The checkpoint before the handler: a conflict fails before
                # the handler's work, and the checkpoint's row is locked
                # before the projection's tables, in the order a reset takes
                # them (its on_reset truncating them would deadlock with a
                # batch that had written them first).
                moved = await _fetchall(
                    conn, _sql.checkpoint_statement(self._sql, expected), params
                )
                if not moved:
                    found = await _fetchall(conn, self._sql.load_checkpoint, key)
                    actual = _sql.checkpoint_from_rows(found)
                    raise SubscriptionConflictError(name, member, expected, actual)
                await work(conn)

        await self._connections.call(run, retry=False)

    async def _listen(self) -> AsyncListener:
        conn = await self._connections.dedicated()  # autocommit, as it must be
        try:
            await conn.execute(_sql.listen_statement(self._schema))
        except BaseException:
            await conn.close()
            raise
        return AsyncListener(conn)

    async def _log_holder(
        self, *, timeout: float | None = None, statement_timeout: float | None = None
    ) -> LogHolder | None:
        rows = await self._connections.call(
            lambda conn: (
                _fetchall(conn, self._sql.log_holder, ())
                if statement_timeout is None
                else _fetchall_within(conn, self._sql.log_holder, (), statement_timeout)
            ),
            retry=True,
            timeout=timeout,
        )
        return _sql.holder_from_rows(rows)

    async def _load_checkpoint(self, name: str, member: str) -> LogPosition | None:
        params = {"name": name, "member": member}
        rows = await self._connections.call(
            lambda conn: _fetchall(conn, self._sql.load_checkpoint, params),
            retry=True,
        )
        return _sql.checkpoint_from_rows(rows)

    async def _save_checkpoint(
        self,
        name: str,
        member: str,
        expected: LogPosition | None,
        new: LogPosition,
        *,
        durable: bool = True,
    ) -> None:
        params = checkpoint_params(name, member, expected, new)
        rows = await self._connections.call(
            lambda conn: _fetchall(
                conn,
                _sql.checkpoint_statement(self._sql, expected, durable=durable),
                params,
            ),
            retry=False,
        )
        if not rows:
            actual = await self._load_checkpoint(name, member)
            raise SubscriptionConflictError(name, member, expected, actual)

    # --- lifecycle -----------------------------------------------------


async def _answered_within(conn: _Connection, query: bytes, seconds: float) -> bool:
    """
    Run *query* on *conn*, waiting at most *seconds* for the server; tell whether it succeeded.

    Through libpq itself: psycopg's execute has no time limit, and a
    cancelled one first asks the server to cancel, over a new connection,
    which an unanswering network holds up just as long. The results are
    read to the end, so the connection can go on being used.
    """
    pgconn = conn.pgconn
    try:
        pgconn.send_query(query)
        pgconn.flush()
        deadline = time.monotonic() + seconds
        succeeded = True
        while True:
            # Each result, and the end of them, only once it has arrived:
            # libpq's get_result would wait for it without a limit.
            while pgconn.is_busy():
                left = deadline - time.monotonic()
                if left <= 0 or not await _readable_within(pgconn.socket, left):
                    return False
                pgconn.consume_input()
            result = pgconn.get_result()
            if result is None:
                break
            succeeded = succeeded and result.status == pq.ExecStatus.TUPLES_OK
    except (OSError, ValueError, psycopg.Error):
        return False  # the session is gone, and its lock with it
    return succeeded


async def _readable_within(fileno: int, seconds: float) -> bool:
    """Whether socket *fileno* has something to read within *seconds*."""
    if True:  # ASYNC
        # On the event loop, which goes on running other tasks meanwhile.
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[bool] = loop.create_future()

        # The reader may fire again before the waiting task runs (Python
        # 3.11 wakes it a turn later): a second result would be an error.
        def readable() -> None:
            if not ready.done():
                ready.set_result(True)

        loop.add_reader(fileno, readable)
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows
            # a cancellation that comes as the answer does (gh-86296), and a
            # cancelled runner went on following the log.
            async with asyncio.timeout(seconds):
                return bool(await ready)
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(fileno)
    else:
        return socket_ready(fileno, seconds)  # type: ignore[unreachable]


@contextlib.asynccontextmanager
async def _handed_over(conn: _Connection, handed: bool) -> AsyncIterator[None]:
    """
    Run the block in a transaction on *conn* which, if *handed*, user code is given too.

    Whatever the block's outcome, what the user's statements left on the
    session is undone after it (`_reset_session`): a rollback undoes a
    ``SET``, not a session advisory lock. A connection whose transaction the
    user's code ended (`HandlerTransactionError`) is closed, and so
    discarded: its session is no longer what the store set up.
    """
    if not handed:
        async with conn.transaction():
            yield
        return
    try:
        async with conn.transaction():
            yield
    except HandlerTransactionError:
        await conn.close()
        raise
    finally:
        await _reset_session(conn)


async def _reset_session(conn: _Connection) -> None:
    """
    Undo what a handler's statements left on *conn*'s session, before the pool lends it on.

    A handler given the connection may ``SET`` a setting, ``LISTEN``, or
    take a session-level advisory lock: left, each would hold for every
    later user of the connection (a read-only default made the store's own
    appends fail). Only on the store's own pool: a caller's pool may have
    settings of its own to keep, and its ``reset`` callback is where to
    clean. A connection the reset fails on is closed, and so discarded:
    the batch before it has committed.
    """
    if not isinstance(conn, AsyncStoreConnection) or conn.closed:
        return
    try:
        await conn.execute(_sql.RESET_SESSION)
    except psycopg.Error:
        await conn.close()


async def _misuse(conn: _Connection, before: str | None, *, raised: bool) -> str | None:
    """Say how user code ended the transaction *before* names, if it did (`ended_transaction`)."""
    misuse = ended_transaction(conn, raised=raised)
    if misuse is not None or conn.closed:
        return misuse
    if conn.info.transaction_status != pq.TransactionStatus.INTRANS:
        return None  # aborted by the failed statement it raised: the same transaction
    if await _transaction_id(conn) != before:
        return ENDED_BY_ITS_OWN  # and another begun after it
    return None


async def _transaction_id(conn: _Connection) -> str | None:
    cursor = await conn.execute(_sql.TRANSACTION_ID)
    row = await cursor.fetchone()
    return None if row is None else row[0]


def _as_the_handlers(
    work: AsyncTransactionWork, who: str = "the handler"
) -> AsyncTransactionWork:
    """
    Return *work* (a transactional handler, or *who*) with its own statements' failures kept its own.

    The store turns a driver error into its own (`_errors.translate`), and
    some classes of them into `StoreUnavailableError`, which a subscription
    retries at its next turn without ever isolating, parking or stopping at
    an event. A statement of the handler's that fails on a live connection
    (a value too large for an index, a limit of the server's) fails again
    on every turn: it is the handler's error, raised as `EventStoreError`.
    A connection that broke under it is the store's trouble, as before.

    And the transaction must be the subscription's still when *work* is
    done, or ends: one it committed, rolled back, closed, or left aborted
    is `HandlerTransactionError`.
    """

    async def guarded(conn: Any) -> None:
        # A COMMIT or ROLLBACK sent as SQL and then a BEGIN (or, on a pool
        # of connections that are not autocommit, any statement: psycopg
        # begins a transaction itself) leaves the status "in a transaction"
        # again; the transaction id tells (the statement before *work*
        # wrote, so it has one). Two round trips per batch.
        before = await _transaction_id(conn)
        try:
            await work(conn)
        except Exception as exc:
            if idled_out(exc):
                # A broken connection, but the handler's slowness that broke
                # it: it would again at every turn, so it is the handler's.
                raise EventStoreError(f"{who} {IDLED_OUT}") from exc
            misuse = await _misuse(conn, before, raised=True)
            if misuse is not None:
                raise HandlerTransactionError(f"{who} {misuse}") from exc
            if not isinstance(exc, psycopg.Error):
                raise
            if getattr(conn, "broken", True) or passes_whatever_the_event(exc):
                raise
            detail = str(exc).strip() or type(exc).__name__
            raise EventStoreError(f"{who}'s statement failed: {detail}") from exc
        try:
            misuse = await _misuse(conn, before, raised=False)
        except psycopg.Error as exc:  # the check's own statement, before the commit
            if idled_out(exc):
                raise EventStoreError(f"{who} {IDLED_OUT}") from exc
            raise
        if misuse is not None:
            raise HandlerTransactionError(f"{who} {misuse}")

    return guarded
