"""
Drive one eventstore workload for a while, for a sampling profiler.

Run under py-spy (``pip install py-spy``)::

    py-spy record -r 250 -f raw -o batches.txt -- python -m benchmarks.profile batches 10

Only the eventstore side runs (no baseline), on an embedded PostgreSQL
(or ``EVENTSTORE_BENCH_DSN``), so the profile shows where eventstore's time
goes. Names: new_streams, existing_streams, batches, threads, read_stream, read_all,
catch_up (fresh subscriptions catching up on a 20,000-event log), follow
(the 8 threads with one `Subscription.run` following them), serializer,
memory_append.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable

from benchmarks import serializer
from eventstore import (
    InMemoryEventStore,
    LogPosition,
    NewEvent,
    RecordedEvent,
    Subscription,
)
from eventstore.postgres import PoolConfig, PostgresEventStore

DATA = {"amount": 125, "currency": "EUR", "note": "monthly fee", "tags": ["a", "b"]}
METADATA = {"correlation_id": "7d3c1f0e-5b8a-4c1e-9f2a-0b6d8e4a1c55"}


def _event(n: int = 0) -> NewEvent:
    return NewEvent("bench.event", {**DATA, "n": n}, METADATA)


def _until(seconds: float, step: Callable[[int], object]) -> int:
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        step(count)
        count += 1
    return count


def _postgres(work: Callable[[PostgresEventStore], int]) -> int:
    dsn = os.environ.get("EVENTSTORE_BENCH_DSN")
    server = None
    if not dsn:
        from eventstore.testing.postgres_server import EmbeddedServer  # noqa: PLC0415

        server = EmbeddedServer.start({"synchronous_commit": "on"})
        dsn = server.dsn
    try:
        store = PostgresEventStore(
            dsn,
            schema="es_profile",
            pool_config=PoolConfig(min_size=8, max_size=8),
        )
        store.migrate()
        store.pool.wait()
        try:
            return work(store)
        finally:
            store.close()
    finally:
        if server is not None:
            server.close()


def _fill(store: PostgresEventStore, stream: str, count: int) -> None:
    for first in range(0, count, 500):
        store.append(
            stream,
            [_event(n) for n in range(first, first + 500)],
            expected_version=first,
        )


def _threads(store: PostgresEventStore, seconds: float) -> int:
    done = [0] * 8

    def work(index: int) -> None:
        def step(i: int) -> None:
            store.append(f"t{index}", [_event(i)], expected_version=i)

        done[index] = _until(seconds, step)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(done)


def _read_all(store: PostgresEventStore) -> int:
    after: LogPosition | None = None
    count = 0
    while page := store.read_all(after, limit=1_000):
        count += len(page)
        after = page[-1].position
    return count


def _catch_up(store: PostgresEventStore, seconds: float) -> int:
    for s in range(20):
        _fill(store, f"s{s}", 1_000)
    handled = 0

    def step(i: int) -> None:
        nonlocal handled
        handled += Subscription(store, f"catch-up-{i}", lambda events: None).catch_up()

    _until(seconds, step)
    return handled


def _follow(store: PostgresEventStore, seconds: float) -> int:
    handled = [0]

    def handler(events: list[RecordedEvent]) -> None:
        handled[0] += len(events)

    follower = Subscription(store, "follower", handler)
    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop,), name="follower")
    thread.start()
    try:
        appended = _threads(store, seconds)
        deadline = time.monotonic() + 30
        while handled[0] < appended and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join()
    return handled[0]


def run(name: str, seconds: float) -> int:  # noqa: PLR0911  # one return per workload
    """Run workload *name* for *seconds*; return how many operations it did."""
    if name == "new_streams":
        return _postgres(
            lambda s: _until(
                seconds, lambda i: s.append(f"n{i}", [_event(i)], expected_version=0)
            )
        )
    if name == "existing_streams":

        def existing(store: PostgresEventStore) -> int:
            for stream in range(100):
                store.append(f"e{stream}", [_event()], expected_version=0)
            return _until(
                seconds,
                lambda i: store.append(
                    f"e{i % 100}", [_event(i)], expected_version=i // 100 + 1
                ),
            )

        return _postgres(existing)
    if name == "batches":
        return _postgres(
            lambda s: _until(
                seconds,
                lambda i: s.append(
                    "b", [_event(n) for n in range(10)], expected_version=i * 10
                ),
            )
        )
    if name == "threads":
        return _postgres(lambda s: _threads(s, seconds))
    if name == "read_stream":

        def read_stream(store: PostgresEventStore) -> int:
            _fill(store, "long", 10_000)
            return _until(seconds, lambda i: list(store.read_stream("long")))

        return _postgres(read_stream)
    if name == "read_all":

        def read_all(store: PostgresEventStore) -> int:
            _fill(store, "long", 10_000)
            return _until(seconds, lambda i: _read_all(store))

        return _postgres(read_all)
    if name == "catch_up":
        return _postgres(lambda s: _catch_up(s, seconds))
    if name == "follow":
        return _postgres(lambda s: _follow(s, seconds))
    if name == "serializer":
        registry = serializer.make_registry()
        event = serializer.make_event()

        def round_trip(i: int) -> object:
            payload = registry.encode(event)
            return registry.decode(payload.type, payload.schema_version, payload.data)

        return _until(seconds, round_trip)
    if name == "memory_append":
        memory = InMemoryEventStore()
        return _until(
            seconds,
            lambda i: memory.append(
                f"m{i % 1000}",
                [NewEvent("bench.event", DATA, METADATA)],
                expected_version=i // 1000,
            ),
        )
    raise SystemExit(f"unknown workload {name!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name")
    parser.add_argument("seconds", type=float, nargs="?", default=10.0)
    args = parser.parse_args()
    print(f"{args.name}: {run(args.name, args.seconds):,} operations")


if __name__ == "__main__":
    main()
