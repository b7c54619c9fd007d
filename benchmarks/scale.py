"""
Scale workloads: the same appends and reads against tables that already hold many events.

For each size asked (``--scale``: 100k, 1m, 10m events) an eventstore schema
migrated by the store and a baseline table are loaded by ``COPY`` before
anything is timed: half the events in streams of 10,000, half in streams of
100, with the matching ``streams`` rows, so the store's invariants hold
(versions 1..n per stream, ``streams.version`` = n; checked after the load).
The long streams are written in runs of 500 events, round-robin, with a
share of the short streams between the rounds, so a long stream's events lie
in 20 runs spread over the whole table, each run as contiguous as in the
empty-table stream (filled by 500-event appends). One transaction per
50,000 rows, so the log has many transaction ids; event ids are time-ordered
UUIDv7s, as eventstore's. Then ``ANALYZE`` (autovacuum would have, after a
load) and a ``CHECKPOINT``, so no flush of the load falls into a timing.

Each workload then runs, in the same interleaved repetitions, on the empty
tables and on every loaded size, for eventstore and the baseline, and reports
each side's rate at scale as a share of its own empty-table rate.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from benchmarks.baseline import METADATA, Baseline, append_batch, append_one
from benchmarks.context import DATA, Context, checked, event
from benchmarks.harness import Figure, ScaleResult, Timed, interleave_sides, stopwatch
from benchmarks.reads import read_log_baseline, read_log_eventstore, wait_for_log
from eventstore import LogPosition
from eventstore.postgres import PostgresEventStore

SIZES = {"100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
"""The sizes ``--scale`` may name."""

LONG = 10_000
SHORT = 100
RUN = 500
ROUNDS = LONG // RUN
ROWS_PER_TRANSACTION = 50_000
STREAMS = 100
"""Streams the single appends go round-robin over, as in append_existing_streams."""
LOG_READ = 20_000
"""Events the log read reads, after a checkpoint in the middle of the log."""
TARGETS = {
    "scale_append_existing_streams": 0.8,
    "scale_append_batches": 0.8,
    "scale_read_stream_10k": 0.9,
}
"""The least share of the own empty-table rate, at the largest size (10m)."""
JUDGED_AT = "10m"

NOTES = (
    "each size's tables are loaded by COPY before timing (half the events in "
    "10,000-event streams written in 500-event runs spread over the table, "
    "half in 100-event streams; one transaction per 50,000 rows; UUIDv7 ids; "
    "the store's streams rows too, its invariants checked after the load), "
    "then ANALYZE and CHECKPOINT. 'empty' is a fresh schema and table per "
    "workload holding only what the workload adds, timed in the same "
    "interleaved repetitions as every loaded size. Single appends go round-robin "
    "to 100 of the loaded 100-event streams, batches to other ones, the stream "
    "read reads a loaded 10,000-event stream, the log read starts at the event "
    "in the middle of the loaded log (on the empty side, at the start of its "
    "log). Targets, at 10M: appends >= 0.8x and the stream read >= 0.9x of "
    "eventstore's own empty-table rate; the baseline's shares are for "
    "comparison. eventsourcing and the partitioned layout are not run at scale."
)
"""What the scale workloads do, for the report's notes."""

WORKLOADS = (
    "scale_append_existing_streams",
    "scale_append_batches",
    "scale_read_stream_10k",
    "scale_read_global_log",
)

_COLUMNS = "stream_id, version, event_id, type, schema_version, data, metadata"


def layout(total: int) -> tuple[int, int]:
    """Return how many long and short streams hold *total* events, half each."""
    long_streams = max(total // 2 // LONG, 1)
    short_streams = (total - long_streams * LONG) // SHORT
    return long_streams, short_streams


@dataclass
class Loaded:
    """One loaded size: its schemas, what it holds, what the load took."""

    label: str
    events: int
    long_streams: int
    short_streams: int
    store: PostgresEventStore
    base: Baseline
    base_conn: psycopg.Connection[Any]
    middle: tuple[str, int]
    """The stream and version of the event in the middle of the log."""
    load_s: float = 0.0
    busy_s: dict[str, float] = field(default_factory=dict)
    check_s: float = 0.0
    sizes: dict[str, dict[str, int]] = field(default_factory=dict)

    def short(self, index: int) -> str:
        """The id of the *index*-th short stream, spread over all of them."""
        spread = index * (self.short_streams // (STREAMS + 20))
        assert spread < self.short_streams, f"no short stream number {index}"
        return f"short-{spread}"


class _Rows:
    """The COPY text of the load, in transactions of `ROWS_PER_TRANSACTION` rows."""

    def __init__(self, long_streams: int, short_streams: int) -> None:
        self.long_streams = long_streams
        self.short_streams = short_streams
        self.total = long_streams * LONG + short_streams * SHORT
        self.middle: tuple[str, int] = ("", 0)
        self._count = 0
        self._ms = int(time.time() * 1000) - 86_400_000  # a day ago
        self._random = random.getrandbits(62)
        self._data = json.dumps(DATA)[:-1] + ', "n": '
        self._metadata = json.dumps(METADATA)

    def _line(self, stream_id: str, version: int) -> str:
        i = self._count
        self._count += 1
        if i == self.total // 2:
            self.middle = (stream_id, version)
        # UUIDv7 (RFC 9562): 48-bit milliseconds, version 7, 12 bits of
        # counter, variant 10, 62 bits of random; time-ordered like eventstore's.
        value = (
            ((self._ms + (i >> 12)) << 80)
            | (0x7 << 76)
            | ((i & 0xFFF) << 64)
            | (0b10 << 62)
            | (self._random ^ i)
        )
        h = f"{value:032x}"
        return (
            f"{stream_id}\t{version}\t{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
            f"\tbench.event\t1\t{self._data}{version - 1}}}\t{self._metadata}\n"
        )

    def _lines(self) -> Iterator[str]:
        shorts_per_round = -(-self.short_streams // ROUNDS)
        for r in range(ROUNDS):
            for s in range(self.long_streams):
                stream_id = f"long-{s}"
                for version in range(r * RUN + 1, (r + 1) * RUN + 1):
                    yield self._line(stream_id, version)
            first = r * shorts_per_round
            for s in range(first, min(first + shorts_per_round, self.short_streams)):
                stream_id = f"short-{s}"
                for version in range(1, SHORT + 1):
                    yield self._line(stream_id, version)

    def transactions(self) -> Iterator[bytes]:
        chunk: list[str] = []
        for line in self._lines():
            chunk.append(line)
            if len(chunk) == ROWS_PER_TRANSACTION:
                yield "".join(chunk).encode()
                chunk = []
        if chunk:
            yield "".join(chunk).encode()

    def streams(self) -> bytes:
        rows = [f"long-{s}\t{LONG}\n" for s in range(self.long_streams)]
        rows += [f"short-{s}\t{SHORT}\n" for s in range(self.short_streams)]
        return "".join(rows).encode()


def _copier(
    conn: psycopg.Connection[Any],
    statement: sql.Composed,
    busy: dict[str, float],
    side: str,
) -> tuple[queue.Queue[bytes | None], threading.Thread, list[BaseException]]:
    """A thread that COPYs each chunk put on its queue in a transaction of its own."""
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            while (chunk := chunks.get()) is not None:
                started = time.perf_counter()
                with conn.transaction(), conn.cursor().copy(statement) as copy:
                    copy.write(chunk)
                busy[side] = busy.get(side, 0.0) + time.perf_counter() - started
        except BaseException as exc:  # reported by the loader
            errors.append(exc)
            while chunks.get() is not None:  # let the producer finish
                pass

    thread = threading.Thread(target=run, name=f"copy-{side}")
    thread.start()
    return chunks, thread, errors


def _sizes(admin: psycopg.Connection[Any], table: str, rows: int) -> dict[str, int]:
    """The sizes of *table* in bytes: with its indexes and TOAST, its indexes, its heap."""
    row = admin.execute(
        "SELECT pg_total_relation_size(%s::regclass), pg_indexes_size(%s::regclass), "
        "pg_relation_size(%s::regclass)",
        (table, table, table),
    ).fetchone()
    assert row is not None
    return {"total": row[0], "indexes": row[1], "table": row[2], "rows": rows}


def load(ctx: Context, label: str) -> Loaded:
    """Create and fill the eventstore schema and the baseline table of one size."""
    long_streams, short_streams = layout(SIZES[label])
    store = ctx.store(f"scale_{label}")
    base_conn, base = ctx.baseline(f"scale_{label}")
    rows = _Rows(long_streams, short_streams)
    schema = f"es_scale_{label}"
    es_events = sql.Identifier(schema, "events")
    copy_into = f"COPY {{}} ({_COLUMNS}) FROM STDIN"
    es_conn = ctx.closes(psycopg.connect(ctx.dsn, autocommit=True))
    busy: dict[str, float] = {}
    started = time.perf_counter()
    copiers = [
        _copier(es_conn, sql.SQL(copy_into).format(es_events), busy, "eventstore"),
        _copier(base_conn, sql.SQL(copy_into).format(base.table), busy, "baseline"),
    ]
    try:
        for chunk in rows.transactions():
            for chunks, _, _ in copiers:
                chunks.put(chunk)
    finally:
        for chunks, thread, _ in copiers:
            chunks.put(None)
            thread.join()
    for _, _, errors in copiers:
        if errors:
            raise errors[0]
    streams = sql.Identifier(schema, "streams")
    with (
        es_conn.transaction(),
        es_conn.cursor().copy(
            sql.SQL("COPY {} (stream_id, version) FROM STDIN").format(streams)
        ) as copy,
    ):
        copy.write(rows.streams())
    for table in (es_events, streams, base.table):
        ctx.admin.execute(sql.SQL("ANALYZE {}").format(table))
    ctx.admin.execute("CHECKPOINT")
    loaded = Loaded(
        label,
        rows.total,
        long_streams,
        short_streams,
        store,
        base,
        base_conn,
        rows.middle,
        load_s=time.perf_counter() - started,
        busy_s=busy,
    )
    checking = time.perf_counter()
    _check_load(ctx.admin, loaded, schema)
    loaded.check_s = time.perf_counter() - checking
    # Row counts as loaded (and checked by _check_load), not estimates.
    for name, table, count in (
        ("eventstore.events", es_events, rows.total),
        ("eventstore.streams", streams, long_streams + short_streams),
        ("baseline.events", base.table, rows.total),
    ):
        loaded.sizes[name] = _sizes(ctx.admin, table.as_string(ctx.admin), count)
    return loaded


def _check_load(admin: psycopg.Connection[Any], loaded: Loaded, schema: str) -> None:
    """Check the store's invariants on what was loaded: versions 1..n, streams.version = n."""
    bad = admin.execute(
        sql.SQL(
            "SELECT count(*) FROM (SELECT stream_id, count(*) AS n, min(version) AS lo, "
            "max(version) AS hi FROM {events} GROUP BY stream_id) AS e "
            "FULL JOIN {streams} AS s USING (stream_id) "
            "WHERE e.n IS DISTINCT FROM s.version OR e.hi IS DISTINCT FROM s.version "
            "OR e.lo IS DISTINCT FROM 1"
        ).format(
            events=sql.Identifier(schema, "events"),
            streams=sql.Identifier(schema, "streams"),
        )
    ).fetchone()
    assert bad is not None
    if bad[0]:
        raise AssertionError(f"{loaded.label}: {bad[0]} streams with wrong versions")
    row = loaded.base_conn.execute(loaded.base.count_all).fetchone()
    if row is None or row[0] != loaded.events:
        raise AssertionError(f"{loaded.label}: the baseline holds {row} rows")
    if loaded.store.stream_version("long-0") != LONG:
        raise AssertionError(f"{loaded.label}: long-0 is not at {LONG}")


@dataclass
class _Empty:
    """The empty-table sides: a fresh schema and baseline table holding only what the workload adds."""

    store: PostgresEventStore
    base: Baseline
    base_conn: psycopg.Connection[Any]


def _results(
    name: str,
    description: str,
    unit: str,
    figures: dict[str, Figure],
    sizes: Sequence[Loaded],
) -> list[ScaleResult]:
    results = []
    for loaded in sizes:
        outcome = ScaleResult(
            f"{name}@{loaded.label}",
            description,
            unit,
            figures[f"eventstore@{loaded.label}"],
            figures[f"baseline@{loaded.label}"],
            stored_events=loaded.events,
            eventstore_empty=figures["eventstore@empty"],
            baseline_empty=figures["baseline@empty"],
        )
        minimum = TARGETS.get(name)
        if minimum is not None and loaded.label == JUDGED_AT:
            outcome.judge_scale(minimum)
        results.append(outcome)
    return results


def _sides(
    empty: _Empty,
    sizes: Sequence[Loaded],
    eventstore: Callable[[PostgresEventStore, str], Timed],
    baseline: Callable[[psycopg.Connection[Any], Baseline, str], Timed],
) -> dict[str, Timed]:
    """Both sides on the empty tables and on every loaded size, keyed ``side@label``."""
    sides: dict[str, Timed] = {}
    for label, store, conn, base in [
        ("empty", empty.store, empty.base_conn, empty.base),
        *((size.label, size.store, size.base_conn, size.base) for size in sizes),
    ]:
        sides[f"eventstore@{label}"] = eventstore(store, label)
        sides[f"baseline@{label}"] = baseline(conn, base, label)
    return sides


def _check_all(
    results: list[ScaleResult], check: Callable[[], None]
) -> list[ScaleResult]:
    for outcome in results:
        checked(outcome, check)
    return results


def append_existing_streams(
    ctx: Context, empty: _Empty, sizes: Sequence[Loaded]
) -> list[ScaleResult]:
    count = ctx.size(3_000, 500)
    cursor = empty.base_conn.cursor()
    for s in range(STREAMS):
        empty.store.append(f"s{s}", [event()], expected_version=0)
        append_one(cursor, empty.base, f"s{s}", 1, DATA)
    # Per side: the stream ids and their current versions.
    targets: dict[str, tuple[list[str], list[int]]] = {
        "empty": ([f"s{s}" for s in range(STREAMS)], [1] * STREAMS)
    }
    for loaded in sizes:
        targets[loaded.label] = (
            [loaded.short(s) for s in range(STREAMS)],
            [SHORT] * STREAMS,
        )
    versions = {
        f"{side}@{label}": list(start)
        for label, (_, start) in targets.items()
        for side in ("eventstore", "baseline")
    }

    def eventstore(store: PostgresEventStore, label: str) -> Timed:
        ids, _ = targets[label]
        mine = versions[f"eventstore@{label}"]

        def run(rep: int) -> float:
            events = [[event(i)] for i in range(count)]

            def work() -> None:
                for i in range(count):
                    s = i % STREAMS
                    mine[s] = store.append(
                        ids[s], events[i], expected_version=mine[s]
                    ).version

            return stopwatch(work)

        return run

    def baseline(conn: psycopg.Connection[Any], base: Baseline, label: str) -> Timed:
        ids, _ = targets[label]
        mine = versions[f"baseline@{label}"]
        cursor = conn.cursor()

        def run(rep: int) -> float:
            def work() -> None:
                for i in range(count):
                    s = i % STREAMS
                    append_one(cursor, base, ids[s], mine[s] + 1, DATA)
                    mine[s] += 1

            return stopwatch(work)

        return run

    sides = _sides(empty, sizes, eventstore, baseline)
    figures = interleave_sides(ctx.repetitions, count, sides)
    results = _results(
        "scale_append_existing_streams",
        f"{count:,} single-event appends round-robin over {STREAMS} existing streams",
        "events/s",
        figures,
        sizes,
    )
    added = count * (ctx.repetitions + 1) // STREAMS

    def check() -> None:
        stores = {"empty": (empty.store, empty.base, empty.base_conn)}
        stores.update({s.label: (s.store, s.base, s.base_conn) for s in sizes})
        for label, (store, base, conn) in stores.items():
            ids, start = targets[label]
            for s in (0, STREAMS - 1):
                expected = start[s] + added
                actual = store.stream_version(ids[s])
                assert actual == expected == versions[f"eventstore@{label}"][s], (
                    f"{label}: {ids[s]} at {actual}, expected {expected}"
                )
                row = conn.execute(base.count_stream, (ids[s],)).fetchone()
                assert row is not None
                assert tuple(row) == (expected, expected), f"{label}: baseline {row}"

    return _check_all(results, check)


def append_batches(
    ctx: Context, empty: _Empty, sizes: Sequence[Loaded]
) -> list[ScaleResult]:
    appends = ctx.size(300, 60)
    size = 10
    datas = [{**DATA, "n": n} for n in range(size)]

    def stream(label: str, rep: int) -> tuple[str, int]:
        """The stream a repetition appends to, and its version before."""
        if label == "empty":
            return f"b{rep}", 0
        loaded = next(s for s in sizes if s.label == label)
        return loaded.short(STREAMS + 2 + rep), SHORT

    def eventstore(store: PostgresEventStore, label: str) -> Timed:
        def run(rep: int) -> float:
            stream_id, start = stream(label, rep)
            batches = [[event(n) for n in range(size)] for _ in range(appends)]

            def work() -> None:
                for i in range(appends):
                    store.append(
                        stream_id, batches[i], expected_version=start + i * size
                    )

            return stopwatch(work)

        return run

    def baseline(conn: psycopg.Connection[Any], base: Baseline, label: str) -> Timed:
        cursor = conn.cursor()

        def run(rep: int) -> float:
            stream_id, start = stream(label, rep)

            def work() -> None:
                for i in range(appends):
                    append_batch(cursor, base, stream_id, start + i * size + 1, datas)

            return stopwatch(work)

        return run

    sides = _sides(empty, sizes, eventstore, baseline)
    figures = interleave_sides(ctx.repetitions, appends * size, sides)
    results = _results(
        "scale_append_batches",
        f"{appends} appends of {size} events to one existing stream",
        "events/s",
        figures,
        sizes,
    )

    def check() -> None:
        stores = {"empty": (empty.store, empty.base, empty.base_conn)}
        stores.update({s.label: (s.store, s.base, s.base_conn) for s in sizes})
        for label, (store, base, conn) in stores.items():
            for rep in range(-1, ctx.repetitions):
                stream_id, start = stream(label, rep)
                expected = start + appends * size
                assert store.stream_version(stream_id) == expected, (
                    f"{label} {stream_id}"
                )
                row = conn.execute(base.count_stream, (stream_id,)).fetchone()
                assert row is not None
                assert tuple(row) == (expected, expected), f"{label}: baseline {row}"
            stream_id, start = stream(label, 0)
            tail = list(
                store.read_stream(stream_id, from_version=start + 31, limit=size)
            )
            assert [e.data["n"] for e in tail] == list(range(size)), f"{label}: order"

    return _check_all(results, check)


def read_stream(
    ctx: Context, empty: _Empty, sizes: Sequence[Loaded]
) -> list[ScaleResult]:
    reads = ctx.size(5, 1)
    cursor = empty.base_conn.cursor()
    for first in range(0, LONG, RUN):
        empty.store.append(
            "long-0",
            [event(n) for n in range(first, first + RUN)],
            expected_version=first,
        )
        datas = [{**DATA, "n": n} for n in range(first, first + RUN)]
        append_batch(cursor, empty.base, "long-0", first + 1, datas)
    seen: dict[str, tuple[int, int, int]] = {}

    def eventstore(store: PostgresEventStore, label: str) -> Timed:
        key = f"eventstore@{label}"

        def run(rep: int) -> float:
            def work() -> None:
                for _ in range(reads):
                    events = list(store.read_stream("long-0"))
                    seen[key] = (len(events), events[-1].version, events[-1].data["n"])

            return stopwatch(work)

        return run

    def baseline(conn: psycopg.Connection[Any], base: Baseline, label: str) -> Timed:
        key = f"baseline@{label}"
        binary = conn.cursor(binary=True)

        def run(rep: int) -> float:
            def work() -> None:
                for _ in range(reads):
                    binary.execute(base.read_stream, ("long-0",), prepare=True)
                    rows = binary.fetchall()
                    seen[key] = (len(rows), rows[-1][1], rows[-1][5]["n"])

            return stopwatch(work)

        return run

    sides = _sides(empty, sizes, eventstore, baseline)
    figures = interleave_sides(ctx.repetitions, reads * LONG, sides)
    results = _results(
        "scale_read_stream_10k",
        f"read one {LONG:,}-event stream, {reads}x per repetition",
        "events/s",
        figures,
        sizes,
    )

    def check() -> None:
        assert set(seen) == set(sides), sorted(seen)
        for key, got in seen.items():
            assert got == (LONG, LONG, LONG - 1), f"{key}: {got}"

    return _check_all(results, check)


def read_global_log(
    ctx: Context, empty: _Empty, sizes: Sequence[Loaded]
) -> list[ScaleResult]:
    page = 1_000
    total = ctx.size(LOG_READ, LOG_READ // 2)
    per_stream = total // STREAMS
    cursor = empty.base_conn.cursor()
    for s in range(STREAMS):
        empty.store.append(
            f"log-{s}", [event(n) for n in range(per_stream)], expected_version=0
        )
        datas = [{**DATA, "n": n} for n in range(per_stream)]
        append_batch(cursor, empty.base, f"log-{s}", 1, datas)
    wait_for_log(empty.store, total)
    starts: dict[str, tuple[LogPosition | None, int]] = {"empty": (None, 0)}
    for loaded in sizes:
        starts[loaded.label] = _middle(loaded)
    seen: dict[str, tuple[int, bool]] = {}

    def eventstore(store: PostgresEventStore, label: str) -> Timed:
        after = starts[label][0]

        def run(rep: int) -> float:
            def work() -> None:
                seen[f"eventstore@{label}"] = read_log_eventstore(
                    store, after, page, total
                )

            return stopwatch(work)

        return run

    def baseline(conn: psycopg.Connection[Any], base: Baseline, label: str) -> Timed:
        binary = conn.cursor(binary=True)
        after = starts[label][1]

        def run(rep: int) -> float:
            def work() -> None:
                seen[f"baseline@{label}"] = read_log_baseline(
                    binary, base, after, page, total
                )

            return stopwatch(work)

        return run

    sides = _sides(empty, sizes, eventstore, baseline)
    figures = interleave_sides(ctx.repetitions, total, sides)
    results = _results(
        "scale_read_global_log",
        f"read {total:,} events of the global log in pages of {page:,}, after a "
        "checkpoint (in the middle of the loaded log)",
        "events/s",
        figures,
        sizes,
    )

    def check() -> None:
        assert set(seen) == set(sides), sorted(seen)
        for key, (count, ordered) in seen.items():
            assert count == total, f"{key}: read {count:,} of {total:,}"
            assert ordered, f"{key}: positions not increasing"

    return _check_all(results, check)


def _middle(loaded: Loaded) -> tuple[LogPosition, int]:
    """The log positions of the event in the middle of a loaded log, on both sides."""
    stream_id, version = loaded.middle
    events = list(loaded.store.read_stream(stream_id, from_version=version, limit=1))
    row = loaded.base_conn.execute(
        sql.SQL("SELECT position FROM {} WHERE stream_id = %s AND version = %s").format(
            loaded.base.table
        ),
        (stream_id, version),
    ).fetchone()
    assert row is not None
    assert events, loaded.middle
    return events[0].position, int(row[0])


RUNS: dict[str, Callable[[Context, _Empty, Sequence[Loaded]], list[ScaleResult]]] = {
    "scale_append_existing_streams": append_existing_streams,
    "scale_append_batches": append_batches,
    "scale_read_stream_10k": read_stream,
    "scale_read_global_log": read_global_log,
}


def run(
    ctx: Context, labels: Sequence[str], names: Sequence[str], report: dict[str, Any]
) -> list[ScaleResult]:
    """Load every size in *labels*, then run the scale workloads *names* on all of them."""
    import sys  # noqa: PLC0415

    sizes: list[Loaded] = []
    report["scale"] = {}
    for label in labels:
        print(f"loading {label} ...", file=sys.stderr, flush=True)
        loaded = load(ctx, label)
        sizes.append(loaded)
        report["scale"][label] = {
            "events": loaded.events,
            "long_streams": loaded.long_streams,
            "short_streams": loaded.short_streams,
            "load_s": round(loaded.load_s, 1),
            "busy_s": {k: round(v, 1) for k, v in loaded.busy_s.items()},
            "check_s": round(loaded.check_s, 1),
            "sizes": loaded.sizes,
        }
    results: list[ScaleResult] = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        # Each workload's empty side is a fresh schema and table of its own.
        key = name.removeprefix("scale_")
        base_conn, base = ctx.baseline(f"scale_empty_{key}")
        empty = _Empty(ctx.store(f"scale_empty_{key}"), base, base_conn)
        results += RUNS[name](ctx, empty, sizes)
    return results
