"""
The ceiling of a decoded stream read, against eventsourcing's undecoded one.

Run ``python -m benchmarks.read_ceiling [--rounds N]``. One 10,000-event
stream is stored by eventstore and by the eventsourcing recorder on an
embedded PostgreSQL (or ``EVENTSTORE_BENCH_DSN``); the rounds then time, in
turn, on one connection each:

- ``fetch``: psycopg fetching the columns a `RecordedEvent` needs, as
  eventstore's stream read asks for them, nothing mapped or decoded;
- ``fetch + decode data``: the same query's data column alone, fetched and
  decoded with eventstore's JSON decoder;
- ``eventstore``: ``list(store.read_stream(...))``;
- ``eventsourcing``: the recorder's ``select_events``, whose state stays bytes;

each with the cyclic garbage collector on, as the benchmarks run, and then
off, from a collected heap each time.
It also reports the collector's time per generation during the reads: each
`RecordedEvent` keeps four objects the collector tracks (itself, its UUID,
its data dict and, in this data, the list inside it), a `StoredEvent` two,
and the full collections this triggers are what set the two apart most.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from benchmarks import peers
from benchmarks.context import DATA, event, run_probe
from eventstore._json import load_json
from eventstore.postgres import PostgresEventStore
from eventstore.postgres._sql import _STREAM_EVENT_COLUMNS

LENGTH = 10_000
STREAM = "long"


def _fill(store: PostgresEventStore, peer: peers.Peer) -> None:
    originator = peers.stream_id(STREAM)
    for first in range(0, LENGTH, 500):
        store.append(
            STREAM,
            [event(n) for n in range(first, first + 500)],
            expected_version=first,
        )
        peer.insert(
            [
                peers.event(originator, n + 1, {**DATA, "n": n})
                for n in range(first, first + 500)
            ]
        )


def _sides(
    store: PostgresEventStore, peer: peers.Peer, conn: psycopg.Connection[Any]
) -> dict[str, Callable[[], int]]:
    events = sql.Identifier(store.schema, "events")
    columns = sql.SQL("SELECT {} FROM {} WHERE stream_id = %s ORDER BY version").format(
        _STREAM_EVENT_COLUMNS, events
    )
    data = sql.SQL(
        "SELECT data::text FROM {} WHERE stream_id = %s ORDER BY version"
    ).format(events)
    originator = peers.stream_id(STREAM)

    def fetch() -> int:
        return len(conn.execute(columns, (STREAM,), prepare=True).fetchall())

    def fetch_decode() -> int:
        rows = conn.execute(data, (STREAM,), prepare=True).fetchall()
        return len([load_json(row[0]) for row in rows])

    return {
        "fetch": fetch,
        "fetch + decode data": fetch_decode,
        "eventstore": lambda: len(list(store.read_stream(STREAM))),
        "eventsourcing": lambda: len(peer.select(originator)),
    }


def _time(
    sides: dict[str, Callable[[], int]], rounds: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per side with the collector on, and with it off."""
    on: dict[str, list[float]] = {name: [] for name in sides}
    off: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, side in sides.items():
            for collecting, times in ((True, on), (False, off)):
                gc.collect()  # each timing starts from the same heap
                if not collecting:
                    gc.disable()
                try:
                    started = time.perf_counter()
                    assert side() == LENGTH, name
                    times[name].append(time.perf_counter() - started)
                finally:
                    gc.enable()
    return (
        {name: statistics.median(values) for name, values in on.items()},
        {name: statistics.median(values) for name, values in off.items()},
    )


def _collector_time(side: Callable[[], int], rounds: int) -> dict[int, float]:
    """Seconds the collector spent per generation during *rounds* calls of *side*."""
    spent: dict[int, float] = {0: 0.0, 1: 0.0, 2: 0.0}
    started = [0.0]

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            spent[info["generation"]] += time.perf_counter() - started[0]

    gc.callbacks.append(watch)
    try:
        for _ in range(rounds):
            side()
    finally:
        gc.callbacks.remove(watch)
    return spent


def measure(dsn: str, rounds: int) -> str:
    """Store the stream, time every side with the collector on and off; return a table."""
    admin = psycopg.connect(dsn, autocommit=True)
    conn = psycopg.connect(dsn, autocommit=True)
    store = PostgresEventStore(dsn, schema="read_ceiling")
    try:
        admin.execute("DROP SCHEMA IF EXISTS read_ceiling CASCADE")
        store.migrate()
        peer = peers.Peer(admin, "esrc_read_ceiling", 1)
        _fill(store, peer)
        sides = _sides(store, peer, conn)
        _time(sides, 1)  # prepared statements and caches warm
        with_gc, without_gc = _time(sides, rounds)
        collector = {
            name: _collector_time(sides[name], rounds)
            for name in ("eventstore", "eventsourcing")
        }
    finally:
        store.close()
        conn.close()
        admin.close()
    peer_with, peer_without = with_gc["eventsourcing"], without_gc["eventsourcing"]
    lines = [
        f"one {LENGTH:,}-event stream, medians of {rounds} rounds "
        "(eventsourcing / side: above 1 is faster than eventsourcing)",
        "",
        "| side | ms, gc on | / eventsourcing | ms, gc off | / eventsourcing |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in sides:
        on, off = with_gc[name], without_gc[name]
        lines.append(
            f"| {name} | {on * 1e3:.1f} | {peer_with / on:.2f} "
            f"| {off * 1e3:.1f} | {peer_without / off:.2f} |"
        )
    lines.append("")
    for name, spent in collector.items():
        per_read = {gen: seconds / rounds * 1e3 for gen, seconds in spent.items()}
        lines.append(
            f"- collector during {name}'s reads, ms per read: "
            + ", ".join(f"generation {gen} {ms:.1f}" for gen, ms in per_read.items())
        )
    return "\n".join(lines)


def main() -> None:
    run_probe(measure, __doc__.split("\n\n")[0], {"synchronous_commit": "on"})


if __name__ == "__main__":
    main()
