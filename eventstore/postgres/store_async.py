"""`AsyncPostgresEventStore`: the I/O shell around the SQL and mappings of `_sql`."""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Final, TypeVar

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors

from eventstore._decide import judge_append
from eventstore._validation import (
    EncodedAppend,
    EncodedSnapshot,
    check_int,
    check_seconds,
)
from eventstore.errors import (
    ConcurrencyError,
    ConfigError,
    PoolExhaustedError,
)
from eventstore.events import AppendResult, LogPosition, RecordedEvent
from eventstore.health import (
    HealthReport,
    HealthStatus,
    PoolMetrics,
    SubscriptionHealth,
)
from eventstore.postgres import _routing, _sql
from eventstore.postgres._connections_async import AsyncConnections, append_cursor
from eventstore.postgres._queries_async import Row
from eventstore.postgres._queries_async import execute as _execute
from eventstore.postgres._queries_async import fetch_streamed as _fetch_streamed
from eventstore.postgres._queries_async import fetchall as _fetchall
from eventstore.postgres._queries_async import fetchall_within as _fetchall_within
from eventstore.postgres._reading import (
    StreamPaging,
    load_params,
    read_all_params,
    snapshot_params_upto,
    streams,
)
from eventstore.postgres._subscriptions_async import AsyncSubscriptionHooks
from eventstore.postgres.config import PoolConfig
from eventstore.snapshots import LoadedStream, Snapshot
from eventstore.store_async import DEFAULT_SNAPSHOTS_TO_KEEP, AsyncEventStore

__all__ = ["AsyncPostgresEventStore"]

_log = logging.getLogger("eventstore.postgres")

_T = TypeVar("_T")
_Connection = psycopg.AsyncConnection[Any]
_Row = tuple[Any, ...]

_SUBSCRIPTIONS_MIGRATION: Final = 3
"""The migration that made the subscriptions' tables."""

_ATTEMPTS: Final = 5
"""Times an append is re-run when it wrote nothing and no conflict explains it."""


class _Rerun(Exception):  # control flow inside this module, never raised out
    """An append wrote nothing, but the conflict that stopped it is gone: run it again."""

    def __init__(self, append: EncodedAppend) -> None:
        super().__init__(append.stream_id)
        self.append = append


class AsyncPostgresEventStore(AsyncSubscriptionHooks, AsyncEventStore):
    """
    An event store in PostgreSQL tables, shared by any number of processes.

    Appends are one statement each in autocommit (one round trip); the
    expected version is enforced by the database. `read_all` returns events
    in commit-safe order (see ``docs/postgres.md``). Call `migrate` once
    before first use.

    Args:
        dsn: A libpq connection string or URI; the store opens (and closes)
            its own pool. Its password never appears in reprs, errors,
            health reports or logs.
        pool: An open `psycopg_pool.AsyncConnectionPool` instead of *dsn*; its
            owner closes it. Connections that are not autocommit get an
            explicit transaction per call.
        pool_config: Settings of the pool opened from *dsn*; default
            `PoolConfig()`. Not allowed with *pool*.
        schema: Schema of the tables, ``[A-Za-z_][A-Za-z0-9_]*``, at most 63 bytes.
        snapshots_to_keep: Snapshots kept per stream, newest first.
        connect_timeout: Seconds libpq waits to establish a connection (apart
            from the pool's wait for a free connection, `PoolConfig.timeout`).
            A server that refuses connections (down, wrong database, wrong
            password, too many clients) is reported at once, with its reason;
            one that never answers, after this long.
        health_timeout: Most seconds `health` waits for an answer before
            reporting the store unavailable.
        notify_interval: Wake the store's subscriptions (`Subscription.run`,
            listening on a connection of their own) after an append, at most
            once per this many seconds: a NOTIFY per append would serialise
            every commit on the server's notification queue. ``None``: never
            notify; subscriptions then poll.
        partitions: Create a new schema's tables (``streams``, ``events``,
            ``snapshots``) hash-partitioned by ``stream_id`` in this many
            partitions (2-1024; PostgreSQL 17 or newer). Fixed when the
            schema is created: `migrate` refuses another number for an
            existing schema. ``None``: one plain table each for a new
            schema, and any layout for an existing one.

    Raises:
        ConfigError: Both or neither of *dsn* and *pool*, an unparsable DSN
            (the message says which part, never the password), a bad schema
            name or timeout.
        InvalidArgumentError: *snapshots_to_keep* below 1, *partitions*
            outside 2-1024.

    Example:
        >>> store = AsyncPostgresEventStore("postgresql://app@db/app")  # doctest: +SKIP
        >>> await store.migrate()  # doctest: +SKIP

    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        pool: psycopg_pool.AsyncConnectionPool[Any] | None = None,
        pool_config: PoolConfig | None = None,
        schema: str = "eventstore",
        snapshots_to_keep: int = DEFAULT_SNAPSHOTS_TO_KEEP,
        connect_timeout: float = 10.0,
        health_timeout: float = 1.0,
        notify_interval: float | None = 0.05,
        partitions: int | None = None,
    ) -> None:
        self._schema = _sql.check_schema_name(schema)
        self._snapshots_to_keep = check_int(
            snapshots_to_keep, "snapshots_to_keep", minimum=1
        )
        if (dsn is None) == (pool is None):
            raise ConfigError("pass exactly one of dsn and pool")
        if pool is not None and pool_config is not None:
            raise ConfigError("pool_config applies only to a pool opened from a dsn")
        self._connect_timeout = check_seconds(connect_timeout, "connect_timeout")
        self._health_timeout = check_seconds(health_timeout, "health_timeout")
        self._notify_interval = (
            None
            if notify_interval is None
            else check_seconds(notify_interval, "notify_interval")
        )
        self._notified_at = -math.inf
        # A subscription woken by a NOTIFY looks again once this window is
        # over: appends inside it sent none.
        self._notify_window = (self._notify_interval or 0.0) + 0.05
        self._channel = _sql.notify_channel(schema)
        self._partitions = (
            None
            if partitions is None
            else check_int(
                partitions,
                "partitions",
                minimum=_sql.MIN_PARTITIONS,
                maximum=_sql.MAX_PARTITIONS,
            )
        )
        self._sql = _sql.Statements.for_schema(schema)
        self._router = _routing.Router(
            self._sql.stream,
            functools.partial(_sql.StreamStatements.for_tables, schema),
        )
        self._safe_dsn = ""
        if pool is not None:
            self._connections = AsyncConnections(
                pool, owned=False, connect_timeout=self._connect_timeout
            )
        elif not isinstance(dsn, str):
            raise ConfigError(f"dsn must be a str, got {type(dsn).__name__}")
        else:
            self._connections, self._safe_dsn = AsyncConnections.open(
                dsn,
                PoolConfig() if pool_config is None else pool_config,
                name=f"eventstore.{schema}",
                connect_timeout=self._connect_timeout,
            )
        self._call = self._connections.call

    def __repr__(self) -> str:
        where = f" dsn={self._safe_dsn!r}" if self._safe_dsn else ""
        return f"<{type(self).__name__} schema={self._schema!r}{where}>"

    @property
    def schema(self) -> str:
        """The schema holding the store's tables."""
        return self._schema

    @property
    def pool(self) -> psycopg_pool.AsyncConnectionPool[Any]:
        """The connection pool (the store's own, or the one passed in)."""
        return self._connections.pool

    # --- migrations ----------------------------------------------------

    async def migrate(self) -> int:
        """
        Create or upgrade the store's tables; idempotent and safe to run concurrently.

        Migrations are versioned and recorded in ``schema_migrations``; each
        run applies the missing ones in one transaction, under an advisory
        lock per schema, so several processes may migrate at once: each
        waits for the one migrating, however long it takes, whatever the
        pool's ``statement_timeout`` and ``lock_timeout``. A new
        schema of a store built with *partitions* is created hash-partitioned
        at once, in the latest layout.

        Returns:
            The schema version now applied.

        Raises:
            StoreUnavailableError: The server could not be reached.
            ConfigError: The store asks for *partitions*, and the schema
                exists with another layout (a layout is fixed when the schema
                is created), the server is older than PostgreSQL 17, or its
                lock table is too small to create that many partitions in
                one transaction (``max_locks_per_transaction``).
            EventStoreError: The server refused a migration (e.g. no CREATE
                privilege); nothing of it was applied. A schema that needs
                no migration needs no CREATE privilege either.

        """
        self._check_open()
        statements = _sql.migration_statements(self._schema)

        async def run(conn: _Connection) -> int:
            async with conn.transaction():
                cursor = await conn.execute(statements["limits"])
                limits = await cursor.fetchone()
                await conn.execute(_sql.LOCAL_TIMEOUTS, ("0", "0"))
                await conn.execute(
                    statements["lock"], (_sql.MIGRATION_LOCK_NAMESPACE, self._schema)
                )
                await conn.execute(_sql.LOCAL_TIMEOUTS, limits)
                cursor = await conn.execute(
                    statements["migrations_exist"],
                    (_sql.qualified_table(self._schema, "schema_migrations"),),
                )
                found = await cursor.fetchone()
                if not (found and found[0]):
                    await conn.execute(statements["create_schema"])
                    await conn.execute(statements["create_migrations"])
                cursor = await conn.execute(statements["applied"])
                row = await cursor.fetchone()
                applied = int(row[0]) if row else 0
                if applied == 0 and self._partitions is not None:
                    applied = await self._create_partitioned(
                        conn, statements, self._partitions
                    )
                elif applied and self._partitions is not None:
                    await self._check_layout(conn, statements)
                for version, description, _ in _sql.MIGRATIONS:
                    if version > applied:
                        await conn.execute(statements[f"migration_{version}"])
                        await conn.execute(statements["record"], (version, description))
                        _log.info(
                            "applied migration %d (%s) to schema %s",
                            version,
                            description,
                            self._schema,
                        )
                        applied = version
                return applied

        applied = await self._call(run, retry=False)
        # The layout may have been created just now: route by what it is.
        self._router.unsettle()
        return applied

    async def _create_partitioned(
        self, conn: _Connection, statements: dict[str, bytes], partitions: int
    ) -> int:
        if conn.info.server_version < _sql.PARTITIONS_MIN_SERVER:
            raise ConfigError(
                f"partitions need PostgreSQL 17 or newer (an identity column on a "
                f"partitioned table); this server is {conn.info.server_version}"
            )
        try:
            await conn.execute(_sql.partitioned_layout(self._schema, partitions))
        except pg_errors.OutOfMemory as exc:
            # The lock table, sized by the server's settings, not a passing
            # state: asking again would fail the same way.
            raise ConfigError(
                f"creating {partitions} hash partitions locks about "
                f"{_sql.LAYOUT_LOCKS_PER_PARTITION} relations per partition in one "
                "transaction, more than this server's lock table holds: raise "
                "max_locks_per_transaction (a restart), or ask for fewer "
                f"partitions: {str(exc).strip()}"
            ) from exc
        for version, description, _ in _sql.MIGRATIONS:
            if version <= _sql.PARTITIONED_LAYOUT_MIGRATION:
                await conn.execute(statements["record"], (version, description))
        _log.info(
            "created schema %s at migration %d in %d hash partitions",
            self._schema,
            _sql.PARTITIONED_LAYOUT_MIGRATION,
            partitions,
        )
        return _sql.PARTITIONED_LAYOUT_MIGRATION

    async def _check_layout(
        self, conn: _Connection, statements: dict[str, bytes]
    ) -> None:
        cursor = await conn.execute(statements["partitions"], (self._sql.events_table,))
        row = await cursor.fetchone()
        found = int(row[0]) if row else 0
        if found != self._partitions:
            layout = f"{found} hash partitions" if found else "one plain table per role"
            raise ConfigError(
                f"schema {self._schema!r} exists with {layout}, but this store asks "
                f"for partitions={self._partitions}: the layout is fixed when the "
                "schema is created (leave partitions unset to use it as it is)"
            )

    # --- routing -------------------------------------------------------

    async def _statements_for(self, stream_id: str) -> _sql.StreamStatements:
        """Return the statements on *stream_id*'s rows, settling the routing first if need be."""
        if not self._router.settled:
            await self._settle_routing()
        return self._router.for_stream(stream_id)

    async def _settle_routing(self) -> None:
        """Ask the server, once, whether this store may address a stream's partitions itself."""
        params = _sql.routing_params(self._schema)

        async def ask(conn: _Connection) -> tuple[bool, int, int, list[Any] | None]:
            exists, encoding, bounds = (
                await _fetchall(conn, self._sql.partition_bounds, params)
            )[0]
            modulus = _routing.layout_modulus(bounds, encoding)
            probed = None
            if modulus:
                rows = await _fetchall(
                    conn, self._sql.partition_probe, {**params, "partitions": modulus}
                )
                probed = [row[0] for row in rows]
            return exists, len(bounds), modulus, probed

        exists, found, modulus, probed = await self._call(ask, retry=True)
        if self._router.settle(exists, modulus, probed):
            _log.debug(
                "schema %s: statements on a stream go to its own partitions (of %d)",
                self._schema,
                modulus,
            )
        elif found:
            _log.warning(
                "schema %s has partitions this store cannot compute the place of "
                "a stream in (not the layout partitions=N makes, another hash, or "
                "a database encoding other than UTF8): "
                "statements go through the parent tables",
                self._schema,
            )

    # --- writing -------------------------------------------------------

    async def _append(self, appends: Sequence[EncodedAppend]) -> list[AppendResult]:
        if not self._router.settled:
            await self._settle_routing()

        async def append(conn: _Connection) -> list[AppendResult]:
            if len(appends) == 1:
                results = [await self._append_one(conn, appends[0])]
            else:
                results = await self._append_atomically(conn, appends)
            if self._notify_due():
                # On the append's own connection: another, from a busy pool,
                # could keep a committed append's result waiting.
                await self._notify(conn)
            return results

        return await self._call(append, retry=False)

    def _notify_due(self) -> bool:
        """Whether this append sends the NOTIFY: none was sent for *notify_interval*."""
        if self._notify_interval is None:
            return False
        now = time.monotonic()
        if now - self._notified_at < self._notify_interval:
            return False
        self._notified_at = now
        return True

    async def _notify(self, conn: _Connection) -> None:
        # A wake-up is a hint: subscriptions also poll, and re-read the log
        # after every reconnect, so a NOTIFY that fails costs latency only.
        try:
            await _execute(conn, _sql.NOTIFY, (self._channel,))
        except psycopg.Error as exc:
            _log.debug("could not notify subscriptions: %s", exc)

    async def _append_one(
        self, conn: _Connection, append: EncodedAppend
    ) -> AppendResult:
        """Append to one stream in one statement: the fast path."""
        statement, names = self._router.for_append(
            append.stream_id, creates=append.expected_version == 0
        ).append[_sql.append_key(append)]
        named = _sql.append_params(append)
        params = [named[name] for name in names]
        # The last attempt's error, when it ended in one that a re-run may
        # resolve: if every attempt did, it is the server's, not a conflict.
        failed: psycopg.Error | None = None
        for _ in range(_ATTEMPTS):
            failed = None
            try:
                if conn.autocommit:
                    cursor = append_cursor(conn, statement)
                    await cursor.execute(statement, params, prepare=True)
                    rows = await cursor.fetchall()
                else:
                    rows = await _fetchall(conn, statement, params)
            except pg_errors.UniqueViolation as exc:
                await self._refuse_stream_version_clash(conn, (append,), exc)
                # An event id or a new stream stored concurrently: the next
                # attempt finds it committed, writes nothing, and diagnoses.
                failed = exc
                continue
            except pg_errors.SerializationFailure as exc:
                # A pool passed in whose sessions default to REPEATABLE READ
                # or SERIALIZABLE: a concurrent writer's row was not re-read.
                # The next attempt's snapshot has it, as above.
                failed = exc
                continue
            if rows:
                return _sql.result_from_rows(append.stream_id, rows)
            try:
                return await self._diagnose(conn, append)
            except _Rerun:
                continue
        if failed is not None:
            raise failed  # a trigger's, another constraint's: translated as it is
        return await self._give_up(conn, append)

    async def _append_atomically(
        self, conn: _Connection, appends: Sequence[EncodedAppend]
    ) -> list[AppendResult]:
        """Append to several streams in one explicit transaction."""
        ids = {
            "ids": [a.stream_id for a in appends],
            "table": self._sql.events_table,
        }
        rerun = appends[0]
        failed: psycopg.Error | None = None  # as in `_append_one`
        for _ in range(_ATTEMPTS):
            failed = None
            try:
                async with conn.transaction():
                    await conn.execute(self._sql.lock_streams, ids, prepare=True)
                    results = [
                        await self._append_in_transaction(conn, a) for a in appends
                    ]
            except pg_errors.UniqueViolation as exc:
                await self._refuse_stream_version_clash(conn, appends, exc)
                failed = exc
                continue
            except pg_errors.SerializationFailure as exc:
                failed = exc
                continue
            except _Rerun as again:
                rerun = again.append  # the request that keeps being outrun
                continue
            return results
        if failed is not None:
            raise failed
        return [await self._give_up(conn, rerun)]

    async def _append_in_transaction(
        self, conn: _Connection, append: EncodedAppend
    ) -> AppendResult:
        statement, names = self._router.for_append(
            append.stream_id, creates=append.expected_version == 0
        ).append[_sql.append_key(append, in_transaction=True)]
        named = _sql.append_params(append)
        cursor = await conn.execute(
            statement, [named[name] for name in names], prepare=True
        )
        rows = await cursor.fetchall()
        if rows:
            return _sql.result_from_rows(append.stream_id, rows)
        return await self._diagnose(conn, append)

    async def _diagnose(self, conn: _Connection, append: EncodedAppend) -> AppendResult:
        """
        Explain why *append* wrote nothing, the way `InMemoryEventStore` decides.

        Returns:
            The original result when the batch is a retry of a stored one.

        Raises:
            DuplicateEventError: Some ids are stored, and this is no retry.
            ConcurrencyError: The stream is at another version.
            _Rerun: Nothing explains it any more (the conflict was resolved
                meanwhile): run the append again.

        """
        rows = await _fetchall(
            conn,
            self._router.for_stream(append.stream_id).diagnose,
            {"stream_id": append.stream_id, "ids": [e.event_id for e in append.events]},
        )
        actual, stored = _sql.diagnosis_from_rows(rows)
        result = judge_append(append, actual, stored)
        if result is None:
            raise _Rerun(append)
        return result

    async def _refuse_stream_version_clash(
        self,
        conn: _Connection,
        appends: Sequence[EncodedAppend],
        exc: pg_errors.UniqueViolation,
    ) -> None:
        """Raise `ConcurrencyError` if *exc* is the (stream_id, version) backstop."""
        if not _sql.is_stream_version_clash(
            exc.diag.table_name, exc.diag.constraint_name
        ):
            return
        append = _sql.clashing_append(appends, exc.diag.message_detail)
        statements = self._router.for_stream(append.stream_id)
        row = await _fetchall(conn, statements.stream_version, (append.stream_id,))
        actual = int(row[0][0]) if row else 0
        raise ConcurrencyError(
            append.stream_id, append.expected_version, actual
        ) from exc

    async def _give_up(self, conn: _Connection, append: EncodedAppend) -> AppendResult:
        statements = self._router.for_stream(append.stream_id)
        row = await _fetchall(conn, statements.stream_version, (append.stream_id,))
        actual = int(row[0][0]) if row else 0
        raise ConcurrencyError(append.stream_id, append.expected_version, actual)

    async def _save_snapshot(self, snapshot: EncodedSnapshot) -> None:
        params = _sql.snapshot_params(
            snapshot, self._snapshots_to_keep, self._sql.snapshots_table
        )
        statements = await self._statements_for(snapshot.stream_id)

        async def run(conn: _Connection) -> None:
            async with conn.transaction():
                await conn.execute(statements.save_snapshot, params)
                await conn.execute(statements.prune_snapshots, params)

        await self._call(run, retry=True)

    # --- reading -------------------------------------------------------

    async def _stream_version(self, stream_id: str) -> int:
        query = (await self._statements_for(stream_id)).stream_version
        rows = await self._call(
            lambda conn: _fetchall(conn, query, (stream_id,)),
            retry=True,
        )
        return int(rows[0][0]) if rows else 0

    def _read_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        backwards: bool,
        limit: int | None,
    ) -> AsyncIterator[RecordedEvent]:
        paging = StreamPaging.of(
            stream_id, from_version, to_version, backwards=backwards, limit=limit
        )
        if True:  # ASYNC
            # The first page is read at the first step: a call cannot await.
            return self._pages(paging, None)
        else:
            # The first page is read now, at the call, with the stream's version.
            first = None if paging is None else self._first_page(paging)  # type: ignore[unreachable]
            return self._pages(paging, first)

    async def _first_page(self, paging: StreamPaging) -> list[RecordedEvent]:
        """Read the first page, and fix the end of the range at the stream's version now."""
        statements = await self._statements_for(paging.stream_id)
        query = (
            statements.stream_first_backwards
            if paging.backwards
            else statements.stream_first_forwards
        )
        params = paging.params()
        rows = await self._call(lambda conn: _fetchall(conn, query, params), retry=True)
        if rows:
            paging.stop_at(int(rows[0][-1]))
        from_row = _sql.stream_event_from_row
        return [from_row(paging.stream_id, row) for row in rows]

    async def _pages(
        self, paging: StreamPaging | None, events: list[RecordedEvent] | None
    ) -> AsyncIterator[RecordedEvent]:
        if paging is None:
            return
        if events is None:
            self._check_open()  # closed since the call
            events = await self._first_page(paging)
        statements = self._router.for_stream(paging.stream_id)
        query = (
            statements.stream_page_backwards
            if paging.backwards
            else statements.stream_page_forwards
        )
        map_row = functools.partial(_sql.stream_event_from_row, paging.stream_id)
        while events:
            for event in events:
                if self._closed:
                    self._check_open()  # a read under way ends with its store
                yield event
            if not paging.advance(events):
                return
            params = paging.params()  # sets paging.asked
            events = await self._fetch_events(query, params, paging.asked, map_row)

    async def _read_all(
        self, after: LogPosition | None, limit: int
    ) -> list[RecordedEvent]:
        query = self._sql.read_all_first if after is None else self._sql.read_all_after
        params = read_all_params(after, limit)
        return await self._fetch_events(query, params, limit, _sql.event_from_row)

    async def _fetch_events(
        self,
        query: bytes,
        params: dict[str, Any],
        rows: int,
        map_row: Callable[[Row], RecordedEvent],
    ) -> list[RecordedEvent]:
        """Read a page of events asked for up to *rows* rows: streamed if long, else whole."""
        if streams(rows):
            return await self._call(
                lambda conn: _fetch_streamed(conn, query, params, map_row), retry=True
            )
        found = await self._call(
            lambda conn: _fetchall(conn, query, params), retry=True
        )
        return [map_row(row) for row in found]

    async def _load_snapshot(
        self, stream_id: str, max_version: int | None
    ) -> Snapshot | None:
        params = snapshot_params_upto(stream_id, max_version)
        query = (await self._statements_for(stream_id)).load_snapshot
        rows = await self._call(lambda conn: _fetchall(conn, query, params), retry=True)
        return _sql.snapshot_from_row(rows[0]) if rows else None

    async def _load(
        self, stream_id: str, to_version: int | None, use_snapshot: bool
    ) -> LoadedStream:
        params = load_params(stream_id, to_version, use_snapshot=use_snapshot)
        query = (await self._statements_for(stream_id)).load
        rows = await self._call(lambda conn: _fetchall(conn, query, params), retry=True)
        snapshot, events = _sql.load_rows(stream_id, rows)
        return LoadedStream.of(stream_id, snapshot, events)

    def _pool_metrics(self) -> PoolMetrics:
        return self._connections.metrics()

    async def _health(self) -> HealthReport:
        if self._closed:
            return HealthReport(
                HealthStatus.UNAVAILABLE, None, None, error="the store is closed"
            )
        timeout = min(self._connections.pool.timeout, self._health_timeout)
        try:
            metrics = self._pool_metrics()
            started = time.perf_counter()
            rows = await self._call(
                lambda conn: _fetchall_within(
                    conn,
                    self._sql.schema_version,
                    _sql.health_params(self._sql),
                    self._health_timeout,
                ),
                retry=True,
                timeout=timeout,
            )
            latency_ms = round((time.perf_counter() - started) * 1000, 3)
        except Exception as exc:  # health never raises, whatever broke
            try:
                metrics_now: PoolMetrics | None = self._pool_metrics()
            except Exception:  # a closed caller pool, for one
                metrics_now = None
            return HealthReport(
                HealthStatus.DEGRADED
                if isinstance(exc, PoolExhaustedError)
                else HealthStatus.UNAVAILABLE,
                None,
                None,
                metrics_now,
                error=self._connections.scrub(f"{type(exc).__name__}: {exc}"),
            )
        schema_version, partitions, missing = _sql.layout_from_rows(rows)
        subscriptions: tuple[SubscriptionHealth, ...] = ()
        holder = None
        if schema_version is not None and schema_version >= _SUBSCRIPTIONS_MIGRATION:
            try:
                found = await self._call(
                    lambda conn: _fetchall_within(
                        conn, self._sql.health_subscriptions, (), self._health_timeout
                    ),
                    retry=True,
                    timeout=timeout,
                )
                subscriptions = _sql.subscriptions_from_rows(found)
                holder = await self._log_holder(
                    timeout=timeout, statement_timeout=self._health_timeout
                )
            except Exception as exc:  # health never raises; the store answered
                _log.debug("health could not read the subscriptions: %s", exc)
        status, error = metrics.status, None
        if schema_version == _sql.LATEST_MIGRATION and missing:
            status = HealthStatus.UNAVAILABLE
            error = _sql.tables_missing(missing, schema_version)
        elif schema_version is not None and schema_version != _sql.LATEST_MIGRATION:
            # Reachable and readable, but not what this code was written for:
            # behind, subscriptions have no tables; ahead, it may misread.
            status = HealthStatus.DEGRADED
            error = _sql.schema_mismatch(schema_version, _sql.LATEST_MIGRATION)
        return HealthReport(
            status,
            latency_ms,
            schema_version,
            metrics,
            error=error,
            partitions=partitions,
            subscriptions=subscriptions,
            log_held_by=holder,
        )

    if True:  # ASYNC

        async def close(self) -> None:
            """
            Release the store's resources; further calls raise `StoreClosedError`.

            Raises:
                ConfigError: The store's own pool opened on another event loop
                    than this one; the store stays open, to be closed there.
            """
            # Before anything is marked closed: refused here, close() on the
            # right loop must still find the pool to close. Once closed, a
            # close() from anywhere has nothing left to do.
            if not self.closed:
                self._connections.check_loop()
            await super().close()

    async def _close(self) -> None:
        await self._connections.close()
