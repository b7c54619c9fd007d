"""In-process workloads: the serializer and the in-memory store (absolute targets, no baseline)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from benchmarks import serializer
from benchmarks.harness import Figure, Result, interleave, stopwatch
from eventstore import InMemoryEventStore, NewEvent
from eventstore._validation import _to_json

DATA = {"amount": 125, "currency": "EUR", "note": "monthly fee", "tags": ["a", "b"]}
METADATA = {"correlation_id": "7d3c1f0e-5b8a-4c1e-9f2a-0b6d8e4a1c55"}


def serializer_roundtrip(quick: bool) -> Result:
    figures = serializer.run(quick)
    result = Result(
        "serializer_roundtrip",
        "encode + decode of a 20-field nested attrs event (benchmarks/serializer.py)",
        "round trips/s",
        Figure(figures["median"], figures["min"], figures["max"], []),
    )
    result.notes = {
        "encode_median": figures["encode_median"],
        "ceiling_median": figures["ceiling_median"],
        "share_of_ceiling": figures["share_of_ceiling"],
        "decode_median": figures["decode_median"],
        "repetitions": figures["repetitions"],
        "iterations": figures["iterations"],
    }
    result.judge_rate(50_000)
    result.notes["ceiling"] = {
        "rate": figures["ceiling_median"],
        "what": (
            "a check-free codec hand-written for this one event class (timed in the "
            f"same repetitions; eventstore reaches {figures['share_of_ceiling']:.0%} of it)"
        ),
    }
    # serializer.run asserts its own round trip before timing.
    result.check_passed = True
    return result


def _json_ceiling(count: int) -> float:
    """
    Return how many appends per second could encode their data and metadata.

    With the store's own (fastest) JSON encoder and nothing else: the JSON
    check the contract asks of every backend, so no append can be faster.
    """
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(count):
            _to_json(DATA)
            _to_json(METADATA)
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def memory_append(quick: bool, repetitions: int) -> Result:
    count = 20_000 if quick else 100_000
    streams = 1_000
    store = InMemoryEventStore()
    versions: dict[int, list[int]] = {}

    def run(rep: int) -> float:
        events = [[NewEvent("bench.event", DATA, METADATA)] for _ in range(count)]
        current = versions.setdefault(rep, [0] * streams)
        append = store.append

        def work() -> None:
            for i in range(count):
                s = i % streams
                current[s] = append(
                    f"m{rep}-{s}", events[i], expected_version=current[s]
                ).version

        return stopwatch(work)

    _, figure = interleave(repetitions, count, None, run)
    result = Result(
        "memory_append",
        f"in-memory store: {count:,} single-event appends round-robin over {streams:,} streams, right expected version",
        "events/s",
        figure,
    )
    result.judge_rate(200_000)
    result.notes["ceiling"] = {
        "rate": _json_ceiling(count),
        "what": "encoding each append's data and metadata to JSON, nothing else",
    }
    try:
        per_stream = count // streams
        for rep in range(-1, repetitions):
            assert store.stream_version(f"m{rep}-0") == per_stream
            assert store.stream_version(f"m{rep}-{streams - 1}") == per_stream
        assert len(store.read_all(None, limit=10)) == 10
    except AssertionError as exc:
        result.check_error = str(exc) or "assertion failed"
    else:
        result.check_passed = True
    return result


def memory_read(quick: bool, repetitions: int) -> list[Result]:
    length = 10_000
    store = InMemoryEventStore()
    for first in range(0, length, 1_000):
        store.append(
            "long",
            [
                NewEvent("bench.event", {**DATA, "n": n})
                for n in range(first, first + 1_000)
            ],
        )
    seen: dict[str, int] = {}

    def reader(fn: Callable[[], int]) -> Callable[[int], float]:
        return lambda rep: stopwatch(fn)

    def read_stream() -> int:
        events = list(store.read_stream("long"))
        seen["stream"] = len(events)
        seen["last"] = events[-1].data["n"]
        return len(events)

    def read_all() -> int:
        after = None
        count = 0
        while page := store.read_all(after, limit=1_000):
            count += len(page)
            after = page[-1].position
        seen["log"] = count
        return count

    _, stream_fig = interleave(repetitions, length, None, reader(read_stream))
    _, all_fig = interleave(repetitions, length, None, reader(read_all))
    results = [
        Result(
            "memory_read_stream",
            f"in-memory store: read a {length:,}-event stream into RecordedEvents",
            "events/s",
            stream_fig,
        ),
        Result(
            "memory_read_all",
            f"in-memory store: read the whole log ({length:,} events) in pages of 1,000",
            "events/s",
            all_fig,
        ),
    ]
    try:
        assert seen == {"stream": length, "last": length - 1, "log": length}, str(seen)
    except AssertionError as exc:
        for result in results:
            result.check_error = str(exc)
    else:
        for result in results:
            result.check_passed = True
    return results
