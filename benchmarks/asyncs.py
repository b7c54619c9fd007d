"""
Async workloads: `AsyncPostgresEventStore` against the async plain-psycopg baseline.

Each workload runs three sides in the same interleaved repetitions, on the
same server: the async store, the async baseline (`benchmarks.baseline_async`),
both awaited on one asyncio event loop per workload, and the sync
`PostgresEventStore` doing the same work with the code of the sync
workloads (`benchmarks.postgres`, `benchmarks.reads`). The async sides'
targets: appends and reads ≥ `TARGET` of the async baseline; 8 tasks on one
pool of 8 at least as fast as the sync store's 8 threads on a pool of 8.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

import psycopg

from benchmarks import baseline_async, postgres, reads
from benchmarks.baseline import append_one
from benchmarks.context import (
    DATA,
    Context,
    Loop,
    async_stopwatch,
    checked,
    event,
)
from benchmarks.harness import AsyncResult, Figure, Result, Timed, interleave_sides
from eventstore import ConcurrencyError, LogPosition, RecordedEvent
from eventstore.postgres import AsyncPostgresEventStore
from eventstore.testing import async_read_log, read_log

TARGET = 0.8
"""The least rate of an async append or read, as a share of the async baseline's."""

TASKS_TARGET = 1.0
"""The least rate of 8 tasks on one async pool, as a share of the sync store's 8 threads."""

NOTES = (
    "async: eventstore = AsyncPostgresEventStore, baseline = the async "
    "baseline, sync = PostgresEventStore doing the same work (8 threads on a "
    "pool of 8 where the async sides run 8 tasks on a pool of 8), all three "
    "in the same interleaved repetitions, the async sides on one event loop "
    "per workload (--loop)."
)


def _result(
    name: str,
    description: str,
    unit: str,
    figures: dict[str, Figure],
    cpu: dict[str, float],
    *,
    target: float | None = TARGET,
    sync_target: float | None = None,
) -> AsyncResult:
    outcome = AsyncResult(
        name,
        description,
        unit,
        figures["eventstore"],
        figures["baseline"],
        sync=figures["sync"],
    )
    outcome.notes["client_cpu_us"] = cpu
    if target is not None:
        outcome.judge_ratio(target)
    if sync_target is not None:
        outcome.judge_sync(sync_target)
    return outcome


def _interleave(
    ctx: Context,
    loop: Loop,
    work: float,
    *,
    eventstore: Callable[[int], Coroutine[Any, Any, float]],
    baseline: Callable[[int], Coroutine[Any, Any, float]],
    sync: Timed,
) -> tuple[dict[str, Figure], dict[str, float]]:
    """
    Run the three sides interleaved; return their figures and client CPU.

    The CPU is this process's (`time.process_time`, every thread) per unit
    of *work*, the median over the measured repetitions, whole repetitions
    (the eventstore sides' building of their NewEvents included). The
    server's CPU is not in it.
    """
    cpu: dict[str, list[float]] = {}

    def metered(name: str, side: Timed) -> Timed:
        samples = cpu[name] = []

        def run(rep: int) -> float:
            start = time.process_time()
            elapsed = side(rep)
            if rep >= 0:
                samples.append(time.process_time() - start)
            return elapsed

        return run

    figures = interleave_sides(
        ctx.repetitions,
        work,
        {
            "eventstore": metered("eventstore", loop.timed(eventstore)),
            "baseline": metered("baseline", loop.timed(baseline)),
            "sync": metered("sync", sync),
        },
    )
    return figures, {
        name: round(statistics.median(samples) / work * 1e6, 1)
        for name, samples in cpu.items()
    }


async def _refused_async(
    attempt: Coroutine[Any, Any, object], error: type[Exception], what: str
) -> None:
    try:
        await attempt
    except error:
        return
    raise AssertionError(what)


def _baseline_cursor(
    ctx: Context, loop: Loop, *, binary: bool = False
) -> psycopg.AsyncCursor[Any]:
    conn = ctx.async_closes(loop, loop.run(baseline_async.connect(ctx.dsn)))
    return conn.cursor(binary=binary)


async def _count(
    cursor: psycopg.AsyncCursor[Any], query: bytes, *args: Any
) -> tuple[Any, ...]:
    await cursor.execute(query, args or None)
    row = await cursor.fetchone()
    assert row is not None
    return tuple(row)


# --- appends -----------------------------------------------------------------


def new_streams(ctx: Context) -> Result:
    count = ctx.size(3_000, 400)
    name = "async_new_streams"
    loop = ctx.loop()
    store = ctx.async_store(loop, name)
    sync_store = ctx.store(name)
    _, base = ctx.baseline(name)
    cursor = _baseline_cursor(ctx, loop)

    async def baseline(rep: int) -> float:
        async def work() -> None:
            for i in range(count):
                await baseline_async.append_one(cursor, base, f"b{rep}-{i}", 1, DATA)

        return await async_stopwatch(work)

    async def eventstore(rep: int) -> float:
        # Events built in the timed part, as the baselines' rows are.
        async def work() -> None:
            for i in range(count):
                await store.append(f"e{rep}-{i}", [event(i)], expected_version=0)

        return await async_stopwatch(work)

    figures, cpu = _interleave(
        ctx,
        loop,
        count,
        eventstore=eventstore,
        baseline=baseline,
        sync=postgres.new_streams_writer(sync_store, count),
    )
    outcome = _result(
        "async_append_new_streams",
        f"async single-event appends to {count:,} new streams (expected version 0)",
        "events/s",
        figures,
        cpu,
    )
    rounds = ctx.repetitions + 1

    expected = postgres.new_stream_ids(ctx.repetitions, count)

    async def check_async() -> None:
        postgres.check_new_streams(await async_read_log(store, len(expected)), expected)
        await _refused_async(
            store.append(f"e0-{count - 1}", [event()], expected_version=0),
            ConcurrencyError,
            "an existing stream accepted expected version 0",
        )
        total = await _count(cursor, base.count_all)
        assert total[0] == count * rounds, f"baseline rows: {total[0]}"

    def check() -> None:
        loop.run(check_async())
        postgres.check_new_streams(read_log(sync_store, len(expected)), expected)

    return checked(outcome, check)


def existing_streams(ctx: Context) -> Result:
    count = ctx.size(3_000, 500)
    streams = 100
    name = "async_existing_streams"
    loop = ctx.loop()
    store = ctx.async_store(loop, name)
    sync_store = ctx.store(name)
    conn, base = ctx.baseline(name)
    cursor = _baseline_cursor(ctx, loop)
    versions = [1] * streams
    sync_versions = [1] * streams
    base_versions = [1] * streams
    setup = conn.cursor()

    async def start_streams() -> None:
        for s in range(streams):
            await store.append(f"s{s}", [event()], expected_version=0)

    loop.run(start_streams())
    for s in range(streams):
        sync_store.append(f"s{s}", [event()], expected_version=0)
        append_one(setup, base, f"s{s}", 1, DATA)

    async def baseline(rep: int) -> float:
        async def work() -> None:
            for i in range(count):
                s = i % streams
                version = base_versions[s] + 1
                await baseline_async.append_one(cursor, base, f"s{s}", version, DATA)
                base_versions[s] = version

        return await async_stopwatch(work)

    async def eventstore(rep: int) -> float:
        async def work() -> None:
            for i in range(count):
                s = i % streams
                appended = await store.append(
                    f"s{s}", [event(i)], expected_version=versions[s]
                )
                versions[s] = appended.version

        return await async_stopwatch(work)

    figures, cpu = _interleave(
        ctx,
        loop,
        count,
        eventstore=eventstore,
        baseline=baseline,
        sync=postgres.existing_streams_writer(sync_store, sync_versions, count),
    )
    outcome = _result(
        "async_append_existing_streams",
        f"async: {count:,} single-event appends round-robin over {streams} existing streams, right expected version",
        "events/s",
        figures,
        cpu,
    )
    expected = 1 + count * (ctx.repetitions + 1) // streams

    async def check_async() -> None:
        for s in (0, streams - 1):
            actual = await store.stream_version(f"s{s}")
            assert actual == expected == versions[s], (
                f"stream s{s} at {actual}, expected {expected}"
            )
            row = await _count(cursor, base.count_stream, f"s{s}")
            assert row == (expected, expected), f"baseline stream s{s}: {row}"
        await _refused_async(
            store.append("s0", [event()], expected_version=versions[0] - 1),
            ConcurrencyError,
            "a stale expected version was accepted",
        )
        events = [e async for e in store.read_stream("s0", from_version=2, limit=3)]
        assert [e.data["n"] for e in events] == [0, streams, 2 * streams], "order"

    def check() -> None:
        loop.run(check_async())
        for s in (0, streams - 1):
            assert sync_store.stream_version(f"s{s}") == expected == sync_versions[s]

    return checked(outcome, check)


def batches(ctx: Context) -> Result:
    appends = ctx.size(300, 60)
    size = 10
    name = "async_batches"
    loop = ctx.loop()
    store = ctx.async_store(loop, name)
    sync_store = ctx.store(name)
    _, base = ctx.baseline(name)
    cursor = _baseline_cursor(ctx, loop)
    datas = [{**DATA, "n": n} for n in range(size)]

    async def baseline(rep: int) -> float:
        async def work() -> None:
            for i in range(appends):
                await baseline_async.append_batch(
                    cursor, base, f"b{rep}", i * size + 1, datas
                )

        return await async_stopwatch(work)

    async def eventstore(rep: int) -> float:
        async def work() -> None:
            for i in range(appends):
                batch = [event(n) for n in range(size)]
                await store.append(f"e{rep}", batch, expected_version=i * size)

        return await async_stopwatch(work)

    figures, cpu = _interleave(
        ctx,
        loop,
        appends * size,
        eventstore=eventstore,
        baseline=baseline,
        sync=postgres.batches_writer(sync_store, appends, size),
    )
    outcome = _result(
        "async_append_batches",
        f"async: {appends} appends of {size} events to one stream, right expected version",
        "events/s",
        figures,
        cpu,
    )

    async def check_async() -> None:
        for rep in range(-1, ctx.repetitions):
            assert await store.stream_version(f"e{rep}") == appends * size, "version"
            row = await _count(cursor, base.count_stream, f"b{rep}")
            assert row == (appends * size,) * 2, f"baseline stream b{rep}: {row}"
        events = [
            e
            async for e in store.read_stream(
                "e0", from_version=size * 3 + 1, limit=size
            )
        ]
        assert [e.data["n"] for e in events] == list(range(size)), "batch order"

    def check() -> None:
        loop.run(check_async())
        for rep in range(-1, ctx.repetitions):
            assert sync_store.stream_version(f"e{rep}") == appends * size, "sync"

    return checked(outcome, check)


async def _run_tasks(
    tasks: int, work: Callable[[int], Coroutine[Any, Any, None]]
) -> float:
    """Run *work* for every task index at once; return the seconds until all are done."""
    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for index in range(tasks):
            group.create_task(work(index))
    return time.perf_counter() - start


def tasks(ctx: Context) -> Result:
    workers = 8
    per_task = ctx.size(400, 60)
    name = "async_8_tasks"
    loop = ctx.loop()
    store = ctx.async_store(loop, name, pool_size=workers)
    sync_store = ctx.store(name, pool_size=workers)
    _, base = ctx.baseline(name)
    pool = ctx.async_closes(loop, baseline_async.pool(ctx.dsn, workers))

    async def open_pool() -> None:
        await pool.open()
        await pool.wait()

    loop.run(open_pool())
    cursors: dict[int, psycopg.AsyncCursor[Any]] = {}  # one kept cursor per connection

    async def baseline(rep: int) -> float:
        async def work(index: int) -> None:
            for i in range(per_task):
                conn = await pool.getconn()
                try:
                    cursor = cursors.get(id(conn))
                    if cursor is None:
                        cursor = cursors[id(conn)] = conn.cursor()
                    await baseline_async.append_one(
                        cursor, base, f"b{rep}-{index}", i + 1, DATA
                    )
                finally:
                    await pool.putconn(conn)

        return await _run_tasks(workers, work)

    async def eventstore(rep: int) -> float:
        async def work(index: int) -> None:
            for i in range(per_task):
                await store.append(f"e{rep}-{index}", [event(i)], expected_version=i)

        return await _run_tasks(workers, work)

    figures, cpu = _interleave(
        ctx,
        loop,
        workers * per_task,
        eventstore=eventstore,
        baseline=baseline,
        sync=postgres.threads_writer(sync_store, workers, per_task),
    )
    outcome = _result(
        "async_append_8_tasks",
        f"{workers} asyncio tasks, {per_task} single-event appends each to their own "
        f"stream, one async pool of {workers} (sync: {workers} threads, one pool of {workers})",
        "events/s",
        figures,
        cpu,
        target=None,
        sync_target=TASKS_TARGET,
    )
    outcome.notes["pool_max_size"] = store.pool.max_size

    async def check_async() -> None:
        for rep in range(-1, ctx.repetitions):
            for index in range(workers):
                version = await store.stream_version(f"e{rep}-{index}")
                assert version == per_task, f"stream e{rep}-{index} at {version}"
        async with pool.connection() as conn:
            row = await _count(conn.cursor(), base.count_all)
        assert row[0] == workers * per_task * (ctx.repetitions + 1), "baseline rows"
        assert store.pool.max_size == workers, "pool size"

    def check() -> None:
        loop.run(check_async())
        for rep in range(-1, ctx.repetitions):
            for index in range(workers):
                assert sync_store.stream_version(f"e{rep}-{index}") == per_task

    return checked(outcome, check)


# --- reads -------------------------------------------------------------------


def read_stream(ctx: Context) -> Result:
    length = 10_000
    count = ctx.size(5, 1)
    name = "async_read_stream"
    sync_store = ctx.store(name)
    loop = ctx.loop()
    # Both stores read the same tables.
    store = ctx.async_store(loop, name, same_as=sync_store)
    conn, base = ctx.baseline(name)
    reads.fill_stream([sync_store], conn.cursor(), base, "long", length)
    cursor = _baseline_cursor(ctx, loop, binary=True)
    seen: dict[str, int] = {}

    async def baseline(rep: int) -> float:
        async def work() -> None:
            for _ in range(count):
                rows = await baseline_async.read_stream(cursor, base, "long")
                seen["baseline"] = len(rows)
                seen["baseline_last"] = rows[-1][5]["n"]

        return await async_stopwatch(work)

    async def eventstore(rep: int) -> float:
        async def work() -> None:
            for _ in range(count):
                events = [e async for e in store.read_stream("long")]
                seen["eventstore"] = len(events)
                seen["eventstore_last"] = events[-1].data["n"]
                seen["eventstore_first_version"] = events[0].version
                seen["eventstore_last_version"] = events[-1].version

        return await async_stopwatch(work)

    figures, cpu = _interleave(
        ctx,
        loop,
        count * length,
        eventstore=eventstore,
        baseline=baseline,
        sync=reads.stream_reader(sync_store, "long", count, seen, "sync"),
    )
    outcome = _result(
        "async_read_stream_10k",
        f"async: read one {length:,}-event stream into RecordedEvents, {count}x per repetition",
        "events/s",
        figures,
        cpu,
    )

    async def check_async() -> None:
        events = [
            e async for e in store.read_stream("long", from_version=5_000, limit=3)
        ]
        assert all(isinstance(e, RecordedEvent) for e in events)
        assert [e.version for e in events] == [5_000, 5_001, 5_002]
        assert [e.data["n"] for e in events] == [4_999, 5_000, 5_001]

    def check() -> None:
        assert seen["eventstore"] == seen["sync"] == seen["baseline"] == length, seen
        assert (
            seen["eventstore_last"]
            == seen["sync_last"]
            == seen["baseline_last"]
            == length - 1
        ), seen
        for side in ("eventstore", "sync"):
            assert seen[f"{side}_first_version"] == 1, seen
            assert seen[f"{side}_last_version"] == length, seen
        loop.run(check_async())

    return checked(outcome, check)


async def _read_log(
    store: AsyncPostgresEventStore, after: LogPosition | None, page: int, most: int
) -> tuple[int, bool]:
    """`benchmarks.reads.read_log_eventstore`, awaited."""
    count = 0
    ordered = True
    while count < most:
        events = await store.read_all(after, limit=page)
        count += len(events)
        if events:
            ordered = ordered and (after is None or after < events[0].position)
            after = events[-1].position
        if len(events) < page:
            break
    return count, ordered


def global_log(ctx: Context) -> Result:
    streams = 100
    per_stream = ctx.size(500, 100)
    total = streams * per_stream
    page = 1_000
    name = "async_global_log"
    sync_store = ctx.store(name)
    loop = ctx.loop()
    store = ctx.async_store(loop, name, same_as=sync_store)
    conn, base = ctx.baseline(name)
    reads.fill_log(
        [sync_store], None, conn.cursor(), base, streams=streams, per_stream=per_stream
    )
    waited = reads.wait_for_log(sync_store, total)
    cursor = _baseline_cursor(ctx, loop, binary=True)
    seen: dict[str, tuple[int, bool]] = {}
    everything = total + 1  # more than there is: read up to the short page

    async def baseline(rep: int) -> float:
        async def work() -> None:
            seen["baseline"] = await baseline_async.read_log(
                cursor, base, 0, page, everything
            )

        return await async_stopwatch(work)

    async def eventstore(rep: int) -> float:
        async def work() -> None:
            seen["eventstore"] = await _read_log(store, None, page, everything)

        return await async_stopwatch(work)

    def sync(rep: int) -> float:
        start = time.perf_counter()
        seen["sync"] = reads.read_log_eventstore(sync_store, None, page, everything)
        return time.perf_counter() - start

    figures, cpu = _interleave(
        ctx, loop, total, eventstore=eventstore, baseline=baseline, sync=sync
    )
    outcome = _result(
        "async_read_global_log",
        f"async: read the whole global log ({total:,} events) in pages of {page:,}",
        "events/s",
        figures,
        cpu,
    )
    outcome.notes["log_visible_after_s"] = round(waited, 4)

    async def check_async() -> None:
        first = await store.read_all(None, limit=2)
        assert [e.data["n"] for e in first] == [0, 1], "log order"
        assert first[0].stream_id == "s0", first[0].stream_id

    def check() -> None:
        assert set(seen) == {"eventstore", "baseline", "sync"}, sorted(seen)
        for side, (read, ordered) in seen.items():
            assert read == total, f"{side} read {read:,} of {total:,} events"
            assert ordered, f"{side}: positions not increasing"
        loop.run(check_async())

    return checked(outcome, check)


WORKLOADS: dict[str, Callable[[Context], Result]] = {
    "async_append_new_streams": new_streams,
    "async_append_existing_streams": existing_streams,
    "async_append_batches": batches,
    "async_append_8_tasks": tasks,
    "async_read_stream_10k": read_stream,
    "async_read_global_log": global_log,
}
"""The async workloads, in the order they run (after the sync ones)."""


def relate(results: list[Result]) -> dict[str, Any]:
    """
    Return the async ratios against their targets, for the report.

    Where `append_8_threads` ran in the same run, its eventstore figure
    (separate repetitions) is set beside the async 8 tasks' as well.
    """
    by_name = {r.name: r for r in results}
    summary: dict[str, Any] = {}
    for result in results:
        if not isinstance(result, AsyncResult):
            continue
        summary[result.name] = {
            "vs_async_baseline": result.ratio,
            "target_vs_async_baseline": None if result.met is None else TARGET,
            "met_vs_async_baseline": result.met,
            "vs_sync": result.ratio_sync,
            "target_vs_sync": result.sync_target,
            "met_vs_sync": result.sync_met,
        }
    tasks_result = by_name.get("async_append_8_tasks")
    threads_result = by_name.get("append_8_threads")
    if (
        tasks_result is not None
        and threads_result is not None
        and tasks_result.eventstore is not None
        and threads_result.eventstore is not None
    ):
        ratio = tasks_result.eventstore.median / threads_result.eventstore.median
        tasks_result.notes["vs_append_8_threads"] = ratio
        summary[tasks_result.name]["vs_append_8_threads"] = ratio
        summary[tasks_result.name]["met_vs_append_8_threads"] = ratio >= TASKS_TARGET
        if tasks_result.baseline is not None and threads_result.baseline is not None:
            # The drivers alone, doing the same work: the same ratio for
            # plain psycopg, which the store's async side can hardly pass.
            driver = tasks_result.baseline.median / threads_result.baseline.median
            tasks_result.notes["baseline_vs_append_8_threads_baseline"] = driver
            summary[tasks_result.name]["baseline_vs_append_8_threads_baseline"] = driver
    return summary
