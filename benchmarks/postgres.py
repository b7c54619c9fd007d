"""
PostgreSQL workloads: eventstore against the plain-psycopg baseline, same server, same run.

Each workload gets its own schemas (``es_<name>`` for eventstore,
``base_<name>`` for the baseline), so any subset runs alone, and checks its
own result: a fast wrong answer fails the workload.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import attrs
import psycopg
import psycopg_pool
from psycopg import errors as pg_errors
from psycopg import sql

from benchmarks.baseline import METADATA, Baseline, append_batch, append_one
from benchmarks.harness import Result, interleave, stopwatch
from eventstore import (
    Aggregate,
    ConcurrencyError,
    NewEvent,
    RecordedEvent,
    Registry,
    Repository,
    applies,
)
from eventstore.postgres import PoolConfig, PostgresEventStore
from eventstore.testing import read_log


class _Closeable(Protocol):
    def close(self) -> None: ...


_C = TypeVar("_C", bound=_Closeable)

DATA = {"amount": 125, "currency": "EUR", "note": "monthly fee", "tags": ["a", "b"]}


def _event(n: int = 0) -> NewEvent:
    return NewEvent("bench.event", {**DATA, "n": n}, METADATA)


@attrs.define
class Context:
    """What workloads share: the server, sizes, and the schemas made so far."""

    dsn: str
    quick: bool
    repetitions: int
    admin: psycopg.Connection[Any]
    schemas: list[str] = attrs.field(factory=list)
    _open: list[_Closeable] = attrs.field(factory=list)

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def store(self, name: str, pool_size: int = 1) -> PostgresEventStore:
        schema = f"es_{name}"
        self._drop(schema)
        store = PostgresEventStore(
            self.dsn,
            schema=schema,
            pool_config=PoolConfig(min_size=pool_size, max_size=pool_size),
        )
        store.migrate()
        store.pool.wait()
        return self.closes(store)

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


def _checked(result: Result, check: Callable[[], None]) -> Result:
    try:
        check()
    except AssertionError as exc:
        result.check_error = str(exc) or "assertion failed"
    else:
        result.check_passed = True
    return result


# --- appends ---------------------------------------------------------------


def new_streams(ctx: Context) -> Result:
    count = ctx.size(3_000, 400)
    store = ctx.store("new_streams")
    conn, base = ctx.baseline("new_streams")
    cursor = conn.cursor()

    def baseline(rep: int) -> float:
        def work() -> None:
            for i in range(count):
                append_one(cursor, base, f"b{rep}-{i}", 1, DATA)

        return stopwatch(work)

    def eventstore(rep: int) -> float:
        events = [[_event(i)] for i in range(count)]

        def work() -> None:
            for i in range(count):
                store.append(f"e{rep}-{i}", events[i], expected_version=0)

        return stopwatch(work)

    base_fig, es_fig = interleave(ctx.repetitions, count, baseline, eventstore)
    result = Result(
        "append_new_streams",
        f"single-event appends to {count:,} new streams (expected version 0)",
        "events/s",
        es_fig,
        base_fig,
    )
    result.judge_ratio(0.8)

    def check() -> None:
        for rep in (-1, ctx.repetitions - 1):
            for i in (0, count - 1):
                assert store.stream_version(f"e{rep}-{i}") == 1, "stream not at 1"
        try:
            store.append(f"e0-{count - 1}", [_event()], expected_version=0)
        except ConcurrencyError:
            pass
        else:
            raise AssertionError("an existing stream accepted expected version 0")
        total = conn.execute(base.count_all).fetchone()
        assert total is not None
        assert total[0] == count * (ctx.repetitions + 1), "baseline row count"

    return _checked(result, check)


def existing_streams(ctx: Context) -> Result:
    count = ctx.size(3_000, 500)
    streams = 100
    store = ctx.store("existing_streams")
    conn, base = ctx.baseline("existing_streams")
    cursor = conn.cursor()
    es_versions = [0] * streams
    base_versions = [0] * streams
    for s in range(streams):
        store.append(f"s{s}", [_event()], expected_version=0)
        es_versions[s] = 1
        append_one(cursor, base, f"s{s}", 1, DATA)
        base_versions[s] = 1

    def baseline(rep: int) -> float:
        def work() -> None:
            for i in range(count):
                s = i % streams
                version = base_versions[s] + 1
                append_one(cursor, base, f"s{s}", version, DATA)
                base_versions[s] = version

        return stopwatch(work)

    def eventstore(rep: int) -> float:
        events = [[_event(i)] for i in range(count)]

        def work() -> None:
            for i in range(count):
                s = i % streams
                result = store.append(
                    f"s{s}", events[i], expected_version=es_versions[s]
                )
                es_versions[s] = result.version

        return stopwatch(work)

    base_fig, es_fig = interleave(ctx.repetitions, count, baseline, eventstore)
    result = Result(
        "append_existing_streams",
        f"{count:,} single-event appends round-robin over {streams} existing streams, right expected version",
        "events/s",
        es_fig,
        base_fig,
    )
    result.judge_ratio(0.8)

    def check() -> None:
        expected = 1 + count * (ctx.repetitions + 1) // streams
        for s in (0, streams - 1):
            assert store.stream_version(f"s{s}") == expected == es_versions[s], (
                f"stream s{s} at {store.stream_version(f's{s}')}, expected {expected}"
            )
            row = conn.execute(base.count_stream, (f"s{s}",)).fetchone()
            assert row is not None
            assert tuple(row) == (expected, expected), f"baseline stream s{s}: {row}"
        try:
            store.append("s0", [_event()], expected_version=es_versions[0] - 1)
        except ConcurrencyError:
            pass
        else:
            raise AssertionError("a stale expected version was accepted")

    return _checked(result, check)


def batches(ctx: Context) -> Result:
    appends = ctx.size(300, 60)
    size = 10
    store = ctx.store("batches")
    conn, base = ctx.baseline("batches")
    cursor = conn.cursor()
    datas = [{**DATA, "n": n} for n in range(size)]

    def baseline(rep: int) -> float:
        def work() -> None:
            for i in range(appends):
                append_batch(cursor, base, f"b{rep}", i * size + 1, datas)

        return stopwatch(work)

    def eventstore(rep: int) -> float:
        batches = [[_event(n) for n in range(size)] for _ in range(appends)]

        def work() -> None:
            for i in range(appends):
                store.append(f"e{rep}", batches[i], expected_version=i * size)

        return stopwatch(work)

    base_fig, es_fig = interleave(ctx.repetitions, appends * size, baseline, eventstore)
    result = Result(
        "append_batches",
        f"{appends} appends of {size} events to one stream, right expected version",
        "events/s",
        es_fig,
        base_fig,
    )
    result.judge_ratio(0.8)

    def check() -> None:
        for rep in range(-1, ctx.repetitions):
            assert store.stream_version(f"e{rep}") == appends * size, "stream version"
            row = conn.execute(base.count_stream, (f"b{rep}",)).fetchone()
            assert row is not None
            assert tuple(row) == (appends * size,) * 2, "baseline stream"
        events = list(store.read_stream("e0", from_version=size * 3 + 1, limit=size))
        assert [e.data["n"] for e in events] == list(range(size)), "batch order"

    return _checked(result, check)


def _run_threads(threads: int, target: Callable[[int], None]) -> float:
    errors: list[BaseException] = []
    ready = threading.Barrier(threads + 1)

    def run(index: int) -> None:
        ready.wait()
        try:
            target(index)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    ready.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def threads(ctx: Context) -> Result:
    workers = 8
    per_thread = ctx.size(400, 60)
    store = ctx.store("threads", pool_size=workers)
    _, base = ctx.baseline("threads")
    pool: psycopg_pool.ConnectionPool[Any] = ctx.closes(
        psycopg_pool.ConnectionPool(
            ctx.dsn,
            min_size=workers,
            max_size=workers,
            kwargs={"autocommit": True},
            open=True,
        )
    )
    pool.wait()
    cursors: dict[int, psycopg.Cursor[Any]] = {}  # one kept cursor per connection

    def baseline(rep: int) -> float:
        def work(index: int) -> None:
            for i in range(per_thread):
                conn = pool.getconn()
                try:
                    cursor = cursors.get(id(conn))
                    if cursor is None:
                        cursor = cursors[id(conn)] = conn.cursor()
                    append_one(cursor, base, f"b{rep}-{index}", i + 1, DATA)
                finally:
                    pool.putconn(conn)

        return _run_threads(workers, work)

    def eventstore(rep: int) -> float:
        events = [[[_event(i)] for i in range(per_thread)] for _ in range(workers)]

        def work(index: int) -> None:
            mine = events[index]
            for i in range(per_thread):
                store.append(f"e{rep}-{index}", mine[i], expected_version=i)

        return _run_threads(workers, work)

    base_fig, es_fig = interleave(
        ctx.repetitions, workers * per_thread, baseline, eventstore
    )
    result = Result(
        "append_8_threads",
        f"{workers} threads, {per_thread} single-event appends each to their own stream, one pool of {workers}",
        "events/s",
        es_fig,
        base_fig,
    )
    result.judge_ratio(0.8)

    def check() -> None:
        for rep in range(-1, ctx.repetitions):
            for index in range(workers):
                assert store.stream_version(f"e{rep}-{index}") == per_thread
        with pool.connection() as conn:
            row = conn.execute(base.count_all).fetchone()
        assert row is not None
        assert row[0] == workers * per_thread * (ctx.repetitions + 1), "baseline rows"

    return _checked(result, check)


def _racing(
    racers: int,
    rounds: int,
    side: str,
    attempt: Callable[[int, int], bool],
    winners: dict[str, list[int]],
) -> Callable[[int], float]:
    """A repetition of the race: *rounds* rounds, all *racers* per round at once."""

    def run(rep: int) -> float:
        start_round = threading.Barrier(racers + 1)
        end_round = threading.Barrier(racers + 1)
        won = [0] * rounds
        lock = threading.Lock()
        errors: list[BaseException] = []

        def racer(index: int) -> None:
            for r in range(rounds):
                start_round.wait()
                try:
                    if attempt(index, r):
                        with lock:
                            won[r] += 1
                except BaseException as exc:  # reported below
                    errors.append(exc)
                end_round.wait()

        workers = [threading.Thread(target=racer, args=(i,)) for i in range(racers)]
        for worker in workers:
            worker.start()
        start = time.perf_counter()
        for _ in range(rounds):
            start_round.wait()
            end_round.wait()
        elapsed = time.perf_counter() - start
        for worker in workers:
            worker.join()
        if errors:
            raise errors[0]
        winners[f"{side}{rep}"] = won
        return elapsed

    return run


def race(ctx: Context) -> Result:
    racers = 10
    rounds = 20
    store = ctx.store("race", pool_size=racers)
    _, base = ctx.baseline("race")
    conns = [
        ctx.closes(psycopg.connect(ctx.dsn, autocommit=True)) for _ in range(racers)
    ]
    base_cursors = [c.cursor() for c in conns]
    winners: dict[str, list[int]] = {}

    current = {"rep": 0}

    def base_attempt(index: int, r: int) -> bool:
        try:
            append_one(base_cursors[index], base, f"b{current['rep']}", r + 1, DATA)
        except pg_errors.UniqueViolation:
            return False
        return True

    def es_attempt(index: int, r: int) -> bool:
        try:
            store.append(f"e{current['rep']}", [_event(r)], expected_version=r)
        except ConcurrencyError:
            return False
        return True

    base_run = _racing(racers, rounds, "b", base_attempt, winners)
    es_run = _racing(racers, rounds, "e", es_attempt, winners)

    def baseline(rep: int) -> float:
        current["rep"] = rep
        return base_run(rep)

    def eventstore(rep: int) -> float:
        current["rep"] = rep
        return es_run(rep)

    base_fig, es_fig = interleave(
        ctx.repetitions, racers * rounds, baseline, eventstore
    )
    result = Result(
        "race_one_stream",
        f"{rounds} rounds of {racers} threads appending to one stream with the same expected version",
        "attempts/s",
        es_fig,
        base_fig,
    )
    result.notes["winners_per_round"] = winners

    def check() -> None:
        for key, won in winners.items():
            assert won == [1] * rounds, f"{key}: winners per round {won}"
        for rep in range(-1, ctx.repetitions):
            assert store.stream_version(f"e{rep}") == rounds
            events = list(store.read_stream(f"e{rep}"))
            assert [e.data["n"] for e in events] == list(range(rounds))

    return _checked(result, check)


# --- reads -----------------------------------------------------------------


def _fill_stream(
    store: PostgresEventStore,
    cursor: psycopg.Cursor[Any],
    base: Baseline,
    stream: str,
    count: int,
) -> None:
    chunk = 500
    for first in range(0, count, chunk):
        store.append(
            stream,
            [_event(n) for n in range(first, first + chunk)],
            expected_version=first,
        )
        datas = [{**DATA, "n": n} for n in range(first, first + chunk)]
        append_batch(cursor, base, stream, first + 1, datas)


def read_stream(ctx: Context) -> Result:
    length = 10_000
    reads = ctx.size(5, 1)
    store = ctx.store("read_stream")
    conn, base = ctx.baseline("read_stream")
    _fill_stream(store, conn.cursor(), base, "long", length)
    base_cursor = conn.cursor(binary=True)
    seen: dict[str, int] = {}

    def baseline(rep: int) -> float:
        def work() -> None:
            for _ in range(reads):
                base_cursor.execute(base.read_stream, ("long",), prepare=True)
                rows = base_cursor.fetchall()
                seen["baseline"] = len(rows)
                seen["baseline_last"] = rows[-1][6]["n"]

        return stopwatch(work)

    def eventstore(rep: int) -> float:
        def work() -> None:
            for _ in range(reads):
                events = list(store.read_stream("long"))
                seen["eventstore"] = len(events)
                seen["eventstore_last"] = events[-1].data["n"]
                seen["versions_ok"] = int(
                    events[0].version == 1 and events[-1].version == length
                )

        return stopwatch(work)

    base_fig, es_fig = interleave(ctx.repetitions, reads * length, baseline, eventstore)
    result = Result(
        "read_stream_10k",
        f"read one {length:,}-event stream into RecordedEvents, {reads}x per repetition",
        "events/s",
        es_fig,
        base_fig,
    )
    result.judge_ratio(0.7)

    def check() -> None:
        assert seen["eventstore"] == seen["baseline"] == length, str(seen)
        assert seen["eventstore_last"] == seen["baseline_last"] == length - 1
        assert seen["versions_ok"] == 1
        events = list(store.read_stream("long", from_version=5_000, limit=3))
        assert all(isinstance(e, RecordedEvent) for e in events)
        assert [e.version for e in events] == [5_000, 5_001, 5_002]

    return _checked(result, check)


def _fill_log(
    store: PostgresEventStore,
    cursor: psycopg.Cursor[Any],
    base: Baseline,
    streams: int,
    per_stream: int,
) -> None:
    for s in range(streams):
        store.append(
            f"s{s}", [_event(n) for n in range(per_stream)], expected_version=0
        )
        datas = [{**DATA, "n": n} for n in range(per_stream)]
        append_batch(cursor, base, f"s{s}", 1, datas)


def _wait_for_log(store: PostgresEventStore, total: int) -> float:
    """Wait until the whole log is visible; return the seconds that took."""
    # The log may lag a moment behind the appends (older transactions in the
    # cluster hold it back): wait for all of it before timing reads.
    started = time.perf_counter()
    read_log(store, total, timeout=60.0)
    return time.perf_counter() - started


def global_log(ctx: Context) -> Result:
    streams = 100
    per_stream = ctx.size(500, 100)
    total = streams * per_stream
    page = 1_000
    store = ctx.store("global_log")
    conn, base = ctx.baseline("global_log")
    _fill_log(store, conn.cursor(), base, streams, per_stream)
    waited = _wait_for_log(store, total)
    base_cursor = conn.cursor(binary=True)
    seen: dict[str, int] = {}

    def baseline(rep: int) -> float:
        def work() -> None:
            after = 0
            count = 0
            while True:
                base_cursor.execute(base.read_page, (after, page), prepare=True)
                rows = base_cursor.fetchall()
                count += len(rows)
                if len(rows) < page:
                    break
                after = rows[-1][0]
            seen["baseline"] = count

        return stopwatch(work)

    def eventstore(rep: int) -> float:
        def work() -> None:
            after = None
            count = 0
            ordered = True
            last = None
            while True:
                events = store.read_all(after, limit=page)
                count += len(events)
                if events:
                    if last is not None and not last < events[0].position:
                        ordered = False
                    last = after = events[-1].position
                if len(events) < page:
                    break
            seen["eventstore"] = count
            seen["ordered"] = int(ordered)

        return stopwatch(work)

    base_fig, es_fig = interleave(ctx.repetitions, total, baseline, eventstore)
    result = Result(
        "read_global_log",
        f"read the whole global log ({total:,} events) in pages of {page:,}",
        "events/s",
        es_fig,
        base_fig,
    )
    result.notes["log_visible_after_s"] = round(waited, 4)
    result.judge_ratio(0.7)

    def check() -> None:
        assert seen["eventstore"] == seen["baseline"] == total, str(seen)
        assert seen["ordered"] == 1, "positions not increasing"

    return _checked(result, check)


# --- repository --------------------------------------------------------------


@attrs.frozen
class Deposited:
    amount: int


@attrs.define
class Account(Aggregate):
    balance: int = 0
    deposits: int = 0

    def deposit(self, amount: int) -> None:
        self.raise_event(Deposited(amount))

    @applies(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount
        self.deposits += 1


class AccountRepository(Repository[Account]):
    aggregate_type = Account
    stream_prefix = "account"
    snapshot_every = 100


def _account_registry() -> Registry:
    registry = Registry()
    registry.add(Deposited, "account.deposited")
    registry.add(Account, "account")
    return registry


def repository_load(ctx: Context) -> Result:
    return _repository_load(ctx, tail=0)


def repository_load_tail(ctx: Context) -> Result:
    return _repository_load(ctx, tail=50)


def _repository_load(ctx: Context, *, tail: int) -> Result:
    """
    Load a 10,000-event aggregate against a 100-event one, snapshots every 100.

    With a *tail*, both aggregates have that many events after their last
    snapshot, as most aggregates do, so each load also replays them.
    """
    store = ctx.store(f"repository_load_{tail}")
    repo = AccountRepository(store, _account_registry())
    sizes = {"small": 100 + tail, "large": 10_000 + tail}
    for key, size in sizes.items():
        account = Account(id=key)
        for saved in range(0, size, 100):
            for n in range(saved, min(saved + 100, size)):
                account.deposit(n)
            repo.save(account)
    loads = ctx.size(200, 50)
    loaded: dict[str, Account] = {}

    def loader(key: str) -> Callable[[int], float]:
        def run(rep: int) -> float:
            def work() -> None:
                for _ in range(loads):
                    loaded[key] = repo.get(key)

            return stopwatch(work)

        return run

    small_fig, large_fig = interleave(
        ctx.repetitions, loads, loader("small"), loader("large")
    )
    result = Result(
        "repository_load_tail" if tail else "repository_load_snapshots",
        f"Repository.get of a {sizes['large']:,}-event aggregate (eventstore column) vs a "
        f"{sizes['small']}-event one (baseline column), snapshot_every=100",
        "loads/s",
        large_fig,
        small_fig,
    )
    # Load time of the large one <= 1.5x that of the small one: rate ratio >= 1/1.5.
    result.target = (
        f"{sizes['large']:,} load time <= 1.5x {sizes['small']}'s (ratio >= 0.67)"
    )
    result.met = result.ratio is not None and result.ratio >= 1 / 1.5

    def check() -> None:
        for key, size in sizes.items():
            account = loaded[key]
            assert account.version == size, f"{key}: version {account.version}"
            assert account.deposits == size, f"{key}: deposits {account.deposits}"
            assert account.balance == sum(range(size)), f"{key}: balance"
            snapshot = store.load_snapshot(f"account-{key}")
            assert snapshot is not None, f"{key}: no snapshot"
            assert snapshot.version == size - tail, (
                f"{key}: snapshot at {snapshot.version}"
            )

    return _checked(result, check)


WORKLOADS: dict[str, Callable[[Context], Result]] = {
    "append_new_streams": new_streams,
    "append_existing_streams": existing_streams,
    "append_batches": batches,
    "append_8_threads": threads,
    "race_one_stream": race,
    "read_stream_10k": read_stream,
    "read_global_log": global_log,
    "repository_load_snapshots": repository_load,
    "repository_load_tail": repository_load_tail,
}


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


def make_id() -> str:
    return uuid.uuid4().hex[:8]
