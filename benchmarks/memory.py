"""In-process workloads: the serializer and the in-memory store (absolute targets, no baseline)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, cast

from benchmarks import serializer
from benchmarks.harness import Figure, Result, interleave, stopwatch
from eventstore import InMemoryEventStore, NewEvent
from eventstore._validation import _to_json

DATA = {"amount": 125, "currency": "EUR", "note": "monthly fee", "tags": ["a", "b"]}
METADATA = {"correlation_id": "7d3c1f0e-5b8a-4c1e-9f2a-0b6d8e4a1c55"}

# _to_json takes a dict (the C encoder raises TypeError on a mappingproxy), and
# NewEvent.data is any Mapping; the store copies a non-dict first
# (eventstore/_validation.py encode_json_object), the ceiling does not: every
# event here holds the dicts DATA and METADATA. Cast once, here, rather than
# per field, where cast() would add a function call to the ceiling's loop.
_encode_dict = cast("Callable[[Mapping[str, Any]], str]", _to_json)


def serializer_roundtrip(quick: bool) -> Result:
    figures = serializer.run(quick)
    result = Result(
        "serializer_roundtrip",
        "encode + decode of a 20-field nested attrs event (benchmarks/serializer.py)",
        "round trips/s",
        Figure(figures["median"], figures["min"], figures["max"], figures["samples"]),
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
    # serializer.run compares what each side last produced with the event.
    result.check_error = figures["check_error"]
    result.check_passed = result.check_error is None
    return result


class _MinimalStore:
    """
    The least a thread-safe, JSON-checking in-memory append can do: a ceiling.

    One lock, a list per stream and one for the log, the expected version
    compared, data and metadata encoded with eventstore's own JSON encoder.
    No argument checks, no idempotency, no log positions, no result object.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.streams: dict[str, list[tuple[Any, ...]]] = {}
        self.log: list[tuple[Any, ...]] = []

    def append(self, stream_id: str, events: list[NewEvent], expected: int) -> int:
        with self.lock:
            stream = self.streams.get(stream_id)
            if stream is None:
                stream = self.streams[stream_id] = []
            if len(stream) != expected:
                raise AssertionError(f"{stream_id} is at {len(stream)}, not {expected}")
            for event in events:
                record = (
                    stream_id,
                    len(stream) + 1,
                    event.event_id,
                    event.type,
                    _encode_dict(event.data),
                    _encode_dict(event.metadata),
                )
                stream.append(record)
                self.log.append(record)
            return len(stream)


def memory_append(quick: bool, repetitions: int) -> Result:
    count = 20_000 if quick else 100_000
    streams = 1_000
    store = InMemoryEventStore()
    versions: dict[int, list[int]] = {}

    minimal = _MinimalStore()

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

    def run_minimal(rep: int) -> float:
        events = [[NewEvent("bench.event", DATA, METADATA)] for _ in range(count)]
        current = [0] * streams
        append = minimal.append

        def work() -> None:
            for i in range(count):
                s = i % streams
                current[s] = append(f"m{rep}-{s}", events[i], current[s])

        return stopwatch(work)

    # The ceiling runs where a baseline would, alternating with the store.
    ceiling, figure = interleave(repetitions, count, run_minimal, run)
    assert ceiling is not None
    result = Result(
        "memory_append",
        f"in-memory store: {count:,} single-event appends round-robin over {streams:,} streams, right expected version",
        "events/s",
        figure,
    )
    result.judge_rate(200_000)
    result.notes["ceiling"] = {
        "rate": ceiling.median,
        "what": (
            "a minimal thread-safe store that checks the expected version and encodes "
            "the JSON, and nothing else (benchmarks/memory.py _MinimalStore, timed "
            "alternately with the store)"
        ),
    }
    result.notes["share_of_ceiling"] = figure.median / ceiling.median
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
