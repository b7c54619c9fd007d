"""
What the PostgreSQL workloads share: the server, sizes, the schemas made so far.

Each workload gets its own schemas (``es_<name>`` for eventstore,
``es_<name>_p8`` for eventstore hash-partitioned in 8, ``base_<name>`` for the
baseline, ``esrc_<name>`` for the eventsourcing library), so any subset runs alone, and checks its own result: a fast
wrong answer fails the workload.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

import attrs
import psycopg
from psycopg import sql

from benchmarks.baseline import METADATA, Baseline
from benchmarks.harness import PARTITIONS, Figure, Result, Timed
from benchmarks.peers import Peer
from eventstore import NewEvent
from eventstore.postgres import AsyncPostgresEventStore, PoolConfig, PostgresEventStore


class _Closeable(Protocol):
    def close(self) -> None: ...


class _AsyncCloseable(Protocol):
    async def close(self) -> None: ...


_C = TypeVar("_C", bound=_Closeable)
_AC = TypeVar("_AC", bound=_AsyncCloseable)
_T = TypeVar("_T")


class Loop:
    """
    One asyncio event loop for a workload's async sides, driven from the harness's sync code.

    Everything async of a workload (stores, pools, connections) is made and
    closed on it; between two `run` calls the loop does not run, so the sync
    sides of the same repetitions run alone.
    """

    def __init__(
        self, factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    ) -> None:
        self._runner = asyncio.Runner(loop_factory=factory)

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run *coro* on the loop until it completes; return its result."""
        return self._runner.run(coro)

    def timed(self, side: Callable[[int], Coroutine[Any, Any, float]]) -> Timed:
        """Return *side* as a repetition the harness can run (it times itself)."""
        return lambda rep: self.run(side(rep))

    def close(self) -> None:
        self._runner.close()


class _ClosedOn:
    """Closes an async resource on its loop, for `Context.close_workload`."""

    def __init__(self, loop: Loop, resource: _AsyncCloseable) -> None:
        self._loop = loop
        self._resource = resource

    def close(self) -> None:
        self._loop.run(self._resource.close())

    def __repr__(self) -> str:
        return repr(self._resource)


LOOPS = ("asyncio", "uvloop")
"""The event loops the async workloads can run on (uvloop only where it is installed)."""


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Return what makes an event loop named *name* (None: asyncio's default)."""
    if name == "asyncio":
        return None
    if name == "uvloop":
        # Not a dependency: a probe of what the event loop costs, where installed.
        module = importlib.import_module("uvloop")
        factory: Callable[[], asyncio.AbstractEventLoop] = module.new_event_loop
        return factory
    raise ValueError(f"unknown event loop {name!r}; one of {', '.join(LOOPS)}")


async def async_stopwatch(work: Callable[[], Awaitable[object]]) -> float:
    """Return the seconds awaiting *work()* took."""
    start = time.perf_counter()
    await work()
    return time.perf_counter() - start


EVENTSTORE_GUARANTEES = (
    "each append checks its expected version against the streams table in "
    "the same statement as the insert (a refused append draws no log "
    "position), recognises a re-sent batch by its event ids (unique per "
    "stream) and returns the first result, and validates every argument and "
    "JSON value first; read_all is commit-safe without a table lock (only "
    "transactions older than the snapshot's xmin, ordered by (transaction_id, "
    "position)), so a checkpointing reader never skips an event; reads decode "
    "to RecordedEvents."
)
"""What eventstore guarantees, for the report's notes."""

PARTITIONED_LAYOUT = (
    f"the same store on a schema created with partitions={PARTITIONS}: streams, "
    "events and snapshots hash-partitioned by stream_id. Every key leads with "
    "stream_id, so appends and stream reads touch one partition; read_all "
    f"merges the {PARTITIONS} partitions' (transaction_id, position) indexes."
)

PARTITIONED_TARGET = 0.9
"""The least rate of the partitioned store, as a share of the plain one's."""

DATA = {"amount": 125, "currency": "EUR", "note": "monthly fee", "tags": ["a", "b"]}


def event(n: int = 0) -> NewEvent:
    return NewEvent("bench.event", {**DATA, "n": n}, METADATA)


@attrs.define
class Context:
    """What workloads share: the server, sizes, and the schemas made so far."""

    dsn: str
    quick: bool
    repetitions: int
    admin: psycopg.Connection[Any]
    loop_name: str = "asyncio"
    schemas: list[str] = attrs.field(factory=list)
    _open: list[_Closeable] = attrs.field(factory=list)

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def store(
        self,
        name: str,
        pool_size: int = 1,
        *,
        partitions: int | None = None,
        **options: Any,
    ) -> PostgresEventStore:
        """
        Return a `PostgresEventStore` on a new schema, its pool open and full.

        *options*: more of its arguments (``notify_interval``); those left
        out keep the store's defaults.
        """
        schema = f"es_{name}" if partitions is None else f"es_{name}_p{partitions}"
        self._drop(schema)
        store = PostgresEventStore(
            self.dsn,
            schema=schema,
            pool_config=PoolConfig(min_size=pool_size, max_size=pool_size),
            partitions=partitions,
            **options,
        )
        store.migrate()
        store.pool.wait()
        return self.closes(store)

    def same_schema(
        self, store: PostgresEventStore, pool_size: int = 1, **options: Any
    ) -> PostgresEventStore:
        """Return another `PostgresEventStore` on *store*'s schema, with a pool of its own."""
        other = PostgresEventStore(
            self.dsn,
            schema=store.schema,
            pool_config=PoolConfig(min_size=pool_size, max_size=pool_size),
            **options,
        )
        other.pool.wait()
        return self.closes(other)

    def loop(self) -> Loop:
        """Return a new event loop of `loop_name`'s kind, closed after everything made on it."""
        return self.closes(Loop(loop_factory(self.loop_name)))

    def async_closes(self, loop: Loop, resource: _AC) -> _AC:
        """Return *resource*, to be closed on *loop* by `close_workload`."""
        self._open.append(_ClosedOn(loop, resource))
        return resource

    def async_store(
        self,
        loop: Loop,
        name: str,
        pool_size: int = 1,
        *,
        same_as: PostgresEventStore | None = None,
    ) -> AsyncPostgresEventStore:
        """
        Return an `AsyncPostgresEventStore` on *loop*, its pool open and full.

        Its schema is a new ``es_<name>_async``, or, with *same_as*, that
        sync store's (for reads of the same tables).
        """
        if same_as is None:
            schema = f"es_{name}_async"
            self._drop(schema)
        else:
            schema = same_as.schema

        async def make() -> AsyncPostgresEventStore:
            store = AsyncPostgresEventStore(
                self.dsn,
                schema=schema,
                pool_config=PoolConfig(min_size=pool_size, max_size=pool_size),
            )
            await store.migrate()
            await store.pool.wait()
            return store

        return self.async_closes(loop, loop.run(make()))

    def stores(
        self, name: str, pool_size: int = 1
    ) -> tuple[PostgresEventStore, PostgresEventStore]:
        """Return a store on a plain schema and one on a hash-partitioned one."""
        return (
            self.store(name, pool_size),
            self.store(name, pool_size, partitions=PARTITIONS),
        )

    def peer(self, name: str, pool_size: int = 1) -> Peer:
        """Return an eventsourcing recorder in schema ``esrc_<name>``, its pool of *pool_size*."""
        schema = f"esrc_{name}"
        if schema not in self.schemas:
            self.schemas.append(schema)
        return self.closes(Peer(self.admin, schema, pool_size))

    def baseline(self, name: str) -> tuple[psycopg.Connection[Any], Baseline]:
        schema = f"base_{name}"
        self._drop(schema)
        conn = self.closes(psycopg.connect(self.dsn, autocommit=True))
        return conn, Baseline(conn, schema)

    def closes(self, resource: _C) -> _C:
        """Return *resource*, to be closed by `close_workload`."""
        self._open.append(resource)
        return resource

    def close_workload(self) -> None:
        """Close the stores, connections and pools the last workload opened, all of them."""
        while self._open:
            resource = self._open.pop()
            try:
                resource.close()
            except Exception as exc:  # a figure already taken stands; say so, go on
                print(f"closing {resource!r} failed: {exc}", file=sys.stderr)

    def _drop(self, schema: str) -> None:
        self.admin.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )
        if schema not in self.schemas:
            self.schemas.append(schema)

    def drop_all(self) -> None:
        for schema in list(self.schemas):
            self._drop(schema)


def result(
    name: str,
    description: str,
    unit: str,
    figures: dict[str, Figure],
    *,
    target: float | None = None,
    peer_note: str = "",
) -> Result:
    """
    Return the `Result` of a workload from its sides' *figures*.

    *target*: the least ratio to the baseline. Every workload with a
    partitioned side is held to `PARTITIONED_TARGET` of the plain one.
    *peer_note*: why the eventsourcing side is missing, when it is.
    """
    outcome = Result(
        name,
        description,
        unit,
        figures["eventstore"],
        figures.get("baseline"),
        eventsourcing=figures.get("eventsourcing"),
        partitioned=figures.get("partitioned"),
        peer_note=peer_note,
    )
    if target is not None:
        outcome.judge_ratio(target)
    if outcome.partitioned is not None:
        outcome.judge_partitioned(PARTITIONED_TARGET)
    return outcome


def checked(result: Result, check: Callable[[], None]) -> Result:
    try:
        check()
    except AssertionError as exc:
        result.check_error = str(exc) or "assertion failed"
    else:
        result.check_passed = True
    return result


def server_settings(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """The server's version and the settings that bear on the figures."""
    settings: dict[str, Any] = {}
    row = conn.execute("SHOW server_version").fetchone()
    settings["server_version"] = row[0] if row else None
    for name in (
        "fsync",
        "synchronous_commit",
        "autovacuum",
        "max_connections",
        "shared_buffers",
        "wal_level",
        "full_page_writes",
    ):
        row = conn.execute(
            "SELECT setting FROM pg_settings WHERE name = %s", (name,)
        ).fetchone()
        settings[name] = row[0] if row else None
    return settings


def run_probe(
    measure: Callable[[str, int], str], description: str, settings: dict[str, str]
) -> None:
    """
    Run a probe's ``measure(dsn, rounds)`` from the command line and print its table.

    ``--rounds`` (default 9); the server is ``EVENTSTORE_BENCH_DSN``, or an
    embedded one started with *settings*.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    dsn = os.environ.get("EVENTSTORE_BENCH_DSN")
    if dsn:
        print(measure(dsn, args.rounds))
        return
    from eventstore.testing.postgres_server import EmbeddedServer  # noqa: PLC0415

    with EmbeddedServer.start(settings) as server:
        print(measure(server.dsn, args.rounds))
