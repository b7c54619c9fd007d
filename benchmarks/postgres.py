"""
PostgreSQL append workloads: eventstore against the plain-psycopg baseline, same server, same run.

Every eventstore side runs twice, on a plain schema and on one
hash-partitioned in `PARTITIONS`, and the ``eventsourcing`` library's
recorder (`benchmarks.peers`) does the same appends, all in the same
interleaved repetitions.
`WORKLOADS` lists every PostgreSQL workload, these and those of
`benchmarks.reads`, in the order they run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import psycopg
import psycopg_pool
from eventsourcing.persistence import IntegrityError
from psycopg import errors as pg_errors

from benchmarks import peers, reads
from benchmarks.baseline import append_batch, append_one
from benchmarks.context import DATA, Context, checked, event, result
from benchmarks.harness import Result, Timed, interleave_sides, stopwatch
from eventstore import ConcurrencyError, RecordedEvent
from eventstore.postgres import PostgresEventStore
from eventstore.testing import read_log


def _refused(attempt: Callable[[], object], error: type[Exception], what: str) -> None:
    """Check that *attempt* raises *error*; *what* names what was wrongly accepted."""
    try:
        attempt()
    except error:
        return
    raise AssertionError(what)


def new_streams(ctx: Context) -> Result:
    count = ctx.size(3_000, 400)
    stores = ctx.stores("new_streams")
    peer = ctx.peer("new_streams")
    conn, base = ctx.baseline("new_streams")
    cursor = conn.cursor()

    def baseline(rep: int) -> float:
        def work() -> None:
            for i in range(count):
                append_one(cursor, base, f"b{rep}-{i}", 1, DATA)

        return stopwatch(work)

    def eventstore(store: PostgresEventStore) -> Timed:
        return new_streams_writer(store, count)

    def eventsourcing(rep: int) -> float:
        ids = [peers.stream_id(f"e{rep}-{i}") for i in range(count)]
        datas = [{**DATA, "n": i} for i in range(count)]

        def work() -> None:
            for i in range(count):
                peer.insert([peers.event(ids[i], 1, datas[i])])

        return stopwatch(work)

    figures = interleave_sides(
        ctx.repetitions,
        count,
        {
            "eventstore": eventstore(stores[0]),
            "baseline": baseline,
            "eventsourcing": eventsourcing,
            "partitioned": eventstore(stores[1]),
        },
    )
    outcome = result(
        "append_new_streams",
        f"single-event appends to {count:,} new streams (expected version 0)",
        "events/s",
        figures,
        target=0.8,
    )

    def check() -> None:
        expected = new_stream_ids(ctx.repetitions, count)
        for store in stores:
            check_new_streams(read_log(store, len(expected)), expected)
            _refused(
                partial(store.append, f"e0-{count - 1}", [event()], expected_version=0),
                ConcurrencyError,
                "an existing stream accepted expected version 0",
            )
        total = conn.execute(base.count_all).fetchone()
        assert total is not None
        assert total[0] == count * (ctx.repetitions + 1), "baseline row count"
        assert peer.count() == count * (ctx.repetitions + 1), "eventsourcing rows"
        for rep in (-1, ctx.repetitions - 1):
            for i in (0, count - 1):
                assert peer.version(peers.stream_id(f"e{rep}-{i}")) == 1
        _refused(
            lambda: peer.insert([peers.event(peers.stream_id("e0-0"), 1, DATA)]),
            IntegrityError,
            "eventsourcing stored version 1 twice",
        )

    return checked(outcome, check)


def existing_streams(ctx: Context) -> Result:
    count = ctx.size(3_000, 500)
    streams = 100
    stores = ctx.stores("existing_streams")
    peer = ctx.peer("existing_streams")
    conn, base = ctx.baseline("existing_streams")
    cursor = conn.cursor()
    es_versions = [[1] * streams for _ in stores]
    base_versions = [1] * streams
    peer_versions = [1] * streams
    peer_ids = [peers.stream_id(f"s{s}") for s in range(streams)]
    for s in range(streams):
        for store in stores:
            store.append(f"s{s}", [event()], expected_version=0)
        append_one(cursor, base, f"s{s}", 1, DATA)
        peer.insert([peers.event(peer_ids[s], 1, DATA)])

    def baseline(rep: int) -> float:
        def work() -> None:
            for i in range(count):
                s = i % streams
                version = base_versions[s] + 1
                append_one(cursor, base, f"s{s}", version, DATA)
                base_versions[s] = version

        return stopwatch(work)

    def eventstore(store: PostgresEventStore, versions: list[int]) -> Timed:
        return existing_streams_writer(store, versions, count)

    def eventsourcing(rep: int) -> float:
        datas = [{**DATA, "n": i} for i in range(count)]

        def work() -> None:
            for i in range(count):
                s = i % streams
                version = peer_versions[s] + 1
                peer.insert([peers.event(peer_ids[s], version, datas[i])])
                peer_versions[s] = version

        return stopwatch(work)

    figures = interleave_sides(
        ctx.repetitions,
        count,
        {
            "eventstore": eventstore(stores[0], es_versions[0]),
            "baseline": baseline,
            "eventsourcing": eventsourcing,
            "partitioned": eventstore(stores[1], es_versions[1]),
        },
    )
    outcome = result(
        "append_existing_streams",
        f"{count:,} single-event appends round-robin over {streams} existing streams, right expected version",
        "events/s",
        figures,
        target=0.8,
    )

    def check() -> None:
        expected = 1 + count * (ctx.repetitions + 1) // streams
        for store, versions in zip(stores, es_versions, strict=True):
            for s in (0, streams - 1):
                actual = store.stream_version(f"s{s}")
                assert actual == expected == versions[s], (
                    f"stream s{s} at {actual}, expected {expected}"
                )
            _refused(
                partial(
                    store.append, "s0", [event()], expected_version=versions[0] - 1
                ),
                ConcurrencyError,
                "a stale expected version was accepted",
            )
        for s in (0, streams - 1):
            row = conn.execute(base.count_stream, (f"s{s}",)).fetchone()
            assert row is not None
            assert tuple(row) == (expected, expected), f"baseline stream s{s}: {row}"
            assert peer.version(peer_ids[s]) == expected == peer_versions[s], (
                f"eventsourcing stream s{s} at {peer.version(peer_ids[s])}"
            )
        assert peer.count() == streams + count * (ctx.repetitions + 1)
        _refused(
            lambda: peer.insert([peers.event(peer_ids[0], peer_versions[0], DATA)]),
            IntegrityError,
            "eventsourcing stored a version twice",
        )

    return checked(outcome, check)


def batches(ctx: Context) -> Result:
    appends = ctx.size(300, 60)
    size = 10
    stores = ctx.stores("batches")
    peer = ctx.peer("batches")
    conn, base = ctx.baseline("batches")
    cursor = conn.cursor()
    datas = [{**DATA, "n": n} for n in range(size)]

    def baseline(rep: int) -> float:
        def work() -> None:
            for i in range(appends):
                append_batch(cursor, base, f"b{rep}", i * size + 1, datas)

        return stopwatch(work)

    def eventstore(store: PostgresEventStore) -> Timed:
        return batches_writer(store, appends, size)

    def eventsourcing(rep: int) -> float:
        originator = peers.stream_id(f"e{rep}")

        def work() -> None:
            for i in range(appends):
                first = i * size + 1
                peer.insert(
                    [
                        peers.event(originator, first + n, data)
                        for n, data in enumerate(datas)
                    ]
                )

        return stopwatch(work)

    figures = interleave_sides(
        ctx.repetitions,
        appends * size,
        {
            "eventstore": eventstore(stores[0]),
            "baseline": baseline,
            "eventsourcing": eventsourcing,
            "partitioned": eventstore(stores[1]),
        },
    )
    outcome = result(
        "append_batches",
        f"{appends} appends of {size} events to one stream, right expected version",
        "events/s",
        figures,
        target=0.8,
    )

    def check() -> None:
        for rep in range(-1, ctx.repetitions):
            for store in stores:
                assert store.stream_version(f"e{rep}") == appends * size, (
                    "stream version"
                )
            row = conn.execute(base.count_stream, (f"b{rep}",)).fetchone()
            assert row is not None
            assert tuple(row) == (appends * size,) * 2, "baseline stream"
        for store in stores:
            events = list(
                store.read_stream("e0", from_version=size * 3 + 1, limit=size)
            )
            assert [e.data["n"] for e in events] == list(range(size)), "batch order"
        for rep in range(-1, ctx.repetitions):
            assert peer.version(peers.stream_id(f"e{rep}")) == appends * size
        stored = peer.select(peers.stream_id("e0"))
        assert len(stored) == appends * size, "eventsourcing stream length"
        assert [peers.data_of(e.state)["n"] for e in stored[size * 3 : size * 4]] == (
            list(range(size))
        ), "eventsourcing batch order"

    return checked(outcome, check)


# The eventstore sides of the append workloads, shared with the async
# workloads (benchmarks.asyncs), whose sync column is the same code.


def new_stream_ids(repetitions: int, count: int) -> set[str]:
    """The streams `new_streams_writer` appends to, warm-up included."""
    return {f"e{rep}-{i}" for rep in range(-1, repetitions) for i in range(count)}


def check_new_streams(log: list[RecordedEvent], expected: set[str]) -> None:
    """Check that *log* holds every append to new streams once: one event at version 1 per stream."""
    assert {e.stream_id for e in log} == expected, "streams of the log"
    assert {e.version for e in log} == {1}, "a stream not at version 1"


def new_streams_writer(store: PostgresEventStore, count: int) -> Timed:
    """A repetition: *count* single-event appends to new streams ``e<rep>-<i>``."""

    def run(rep: int) -> float:
        # The events are built inside the timed part, as the baseline's and
        # eventsourcing's rows are.
        def work() -> None:
            for i in range(count):
                store.append(f"e{rep}-{i}", [event(i)], expected_version=0)

        return stopwatch(work)

    return run


def existing_streams_writer(
    store: PostgresEventStore, versions: list[int], count: int
) -> Timed:
    """
    A repetition: *count* single-event appends round-robin over streams ``s<n>``.

    *versions* holds each stream's version, one per stream, and is kept up to date.
    """
    streams = len(versions)

    def run(rep: int) -> float:
        def work() -> None:
            for i in range(count):
                s = i % streams
                appended = store.append(
                    f"s{s}", [event(i)], expected_version=versions[s]
                )
                versions[s] = appended.version

        return stopwatch(work)

    return run


def batches_writer(store: PostgresEventStore, appends: int, size: int) -> Timed:
    """A repetition: *appends* appends of *size* events to stream ``e<rep>``."""

    def run(rep: int) -> float:
        def work() -> None:
            for i in range(appends):
                batch = [event(n) for n in range(size)]
                store.append(f"e{rep}", batch, expected_version=i * size)

        return stopwatch(work)

    return run


def threads_writer(store: PostgresEventStore, workers: int, per_thread: int) -> Timed:
    """A repetition: *workers* threads, *per_thread* appends each to stream ``e<rep>-<thread>``."""

    def run(rep: int) -> float:
        def work(index: int) -> None:
            for i in range(per_thread):
                store.append(f"e{rep}-{index}", [event(i)], expected_version=i)

        return run_threads(workers, work)

    return run


def run_threads(threads: int, target: Callable[[int], None]) -> float:
    """Run *target(index)* in *threads* threads started together; return the seconds until all ended."""
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
    stores = ctx.stores("threads", pool_size=workers)
    peer = ctx.peer("threads", pool_size=workers)
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

        return run_threads(workers, work)

    def eventstore(store: PostgresEventStore) -> Timed:
        return threads_writer(store, workers, per_thread)

    def eventsourcing(rep: int) -> float:
        ids = [peers.stream_id(f"e{rep}-{index}") for index in range(workers)]
        datas = [{**DATA, "n": i} for i in range(per_thread)]

        def work(index: int) -> None:
            originator = ids[index]
            for i in range(per_thread):
                peer.insert([peers.event(originator, i + 1, datas[i])])

        return run_threads(workers, work)

    figures = interleave_sides(
        ctx.repetitions,
        workers * per_thread,
        {
            "eventstore": eventstore(stores[0]),
            "baseline": baseline,
            "eventsourcing": eventsourcing,
            "partitioned": eventstore(stores[1]),
        },
    )
    outcome = result(
        "append_8_threads",
        f"{workers} threads, {per_thread} single-event appends each to their own stream, one pool of {workers}",
        "events/s",
        figures,
        target=0.8,
    )

    def check() -> None:
        for rep in range(-1, ctx.repetitions):
            for index in range(workers):
                for store in stores:
                    assert store.stream_version(f"e{rep}-{index}") == per_thread
        with pool.connection() as conn:
            row = conn.execute(base.count_all).fetchone()
        assert row is not None
        assert row[0] == workers * per_thread * (ctx.repetitions + 1), "baseline rows"
        for rep in range(-1, ctx.repetitions):
            for index in range(workers):
                originator = peers.stream_id(f"e{rep}-{index}")
                assert peer.version(originator) == per_thread, "eventsourcing stream"
        assert peer.count() == workers * per_thread * (ctx.repetitions + 1)

    return checked(outcome, check)


def _racing(
    racers: int,
    rounds: int,
    side: str,
    attempt: Callable[[int, int, int], bool],
    winners: dict[str, list[int]],
) -> Timed:
    """
    A repetition of the race: *rounds* rounds, all *racers* per round at once.

    *attempt* takes the repetition, the racer and the round, and tells
    whether that racer's append won.
    """

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
                    if attempt(rep, index, r):
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
    stores = ctx.stores("race", pool_size=racers)
    peer = ctx.peer("race", pool_size=racers)
    _, base = ctx.baseline("race")
    conns = [
        ctx.closes(psycopg.connect(ctx.dsn, autocommit=True)) for _ in range(racers)
    ]
    base_cursors = [c.cursor() for c in conns]
    winners: dict[str, list[int]] = {}

    def base_attempt(rep: int, index: int, r: int) -> bool:
        try:
            append_one(base_cursors[index], base, f"b{rep}", r + 1, DATA)
        except pg_errors.UniqueViolation:
            return False
        return True

    def es_attempt(store: PostgresEventStore) -> Callable[[int, int, int], bool]:
        def attempt(rep: int, index: int, r: int) -> bool:
            try:
                store.append(f"e{rep}", [event(r)], expected_version=r)
            except ConcurrencyError:
                return False
            return True

        return attempt

    peer_ids = {rep: peers.stream_id(f"e{rep}") for rep in range(-1, ctx.repetitions)}

    def peer_attempt(rep: int, index: int, r: int) -> bool:
        # Its only concurrency control: the primary key on (originator_id,
        # originator_version); the table lock makes the racers queue for it.
        try:
            peer.insert([peers.event(peer_ids[rep], r + 1, {**DATA, "n": r})])
        except IntegrityError:
            return False
        return True

    figures = interleave_sides(
        ctx.repetitions,
        racers * rounds,
        {
            "eventstore": _racing(racers, rounds, "e", es_attempt(stores[0]), winners),
            "baseline": _racing(racers, rounds, "b", base_attempt, winners),
            "eventsourcing": _racing(racers, rounds, "s", peer_attempt, winners),
            "partitioned": _racing(racers, rounds, "p", es_attempt(stores[1]), winners),
        },
    )
    outcome = result(
        "race_one_stream",
        f"{rounds} rounds of {racers} threads appending to one stream with the same expected version",
        "attempts/s",
        figures,
    )
    outcome.notes["winners_per_round"] = winners

    def check() -> None:
        for key, won in winners.items():
            assert won == [1] * rounds, f"{key}: winners per round {won}"
        for store in stores:
            for rep in range(-1, ctx.repetitions):
                assert store.stream_version(f"e{rep}") == rounds
                events = list(store.read_stream(f"e{rep}"))
                assert [e.data["n"] for e in events] == list(range(rounds))
        for rep, originator in peer_ids.items():
            stored = peer.select(originator)
            assert [e.originator_version for e in stored] == list(range(1, rounds + 1))
            assert [peers.data_of(e.state)["n"] for e in stored] == list(
                range(rounds)
            ), f"eventsourcing stream of repetition {rep}"

    return checked(outcome, check)


WORKLOADS: dict[str, Callable[[Context], Result]] = {
    "append_new_streams": new_streams,
    "append_existing_streams": existing_streams,
    "append_batches": batches,
    "append_8_threads": threads,
    "race_one_stream": race,
    "read_stream_10k": reads.read_stream,
    "read_global_log": reads.global_log,
    "repository_load_snapshots": reads.repository_load,
    "repository_load_tail": reads.repository_load_tail,
}
