"""
Subscription workloads: `Subscription` against the same `PostgresEventStore` doing without it.

- ``subscription_catch_up``: `Subscription.catch_up` of a fresh
  subscription over a log of several streams, against paging through the
  same log with ``read_all(after, limit=BATCH)``, the same batch size; and,
  not judged, the same catch-up with ``batch_size=LARGE_BATCH``. Every side
  keeps the ids and positions of what it read, for the check, and drops
  the events.
- ``append_with_follower``: `WRITERS` threads appending single events to
  their own streams at full speed, as ``append_8_threads`` does, with one
  `Subscription.run` following the log in a thread of the same process,
  against the same appends followed by nobody; and the cost of NOTIFY: the
  same appends, followed by nobody, with ``notify_interval=None``, the
  store's default and ``1e-9`` (a NOTIFY per append), each against None.
- ``subscription_latency``: in those same followed repetitions, how long
  after its append returned each event reached the follower's handler
  (both on `time.monotonic`): per event id, the writer records when its
  append returned, the handler when the event arrived. With the store's
  default ``notify_interval`` (LISTEN/NOTIFY) and, in full runs, with
  polling alone (``notify_interval=None``, ``poll_interval=0.5``).

`follow` makes the last two from the same interleaved repetitions. Every
side has a schema of its own; each follower follows its side's schema from
a store of its own (a pool of 1, and the sessions `Subscription.run` opens
for its lock and its LISTEN), from the workload's start to its end.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import inspect
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

import attrs

from benchmarks.context import Context, checked, event
from benchmarks.harness import (
    Figure,
    Result,
    SubscriptionResult,
    Timed,
    interleave_sides,
    stopwatch,
)
from benchmarks.postgres import run_threads
from benchmarks.reads import wait_for_log
from eventstore import LogPosition, RecordedEvent, Subscription, SubscriptionState
from eventstore.postgres import PostgresEventStore

BATCH = 500
"""The catch-up's batch size, and the page size of the ``read_all`` it is compared with."""

WRITERS = 8
"""Appending threads, as in ``append_8_threads``."""

CATCH_UP_TARGET = 0.8
"""The least catch-up rate, as a share of ``read_all`` paging's."""

FOLLOWER_TARGET = 0.95
"""The least rate of the appends with a follower, as a share of those without."""

LATENCY_TARGET_MS = 100.0
"""The most p99 latency, append returned to handler, with LISTEN/NOTIFY."""

POLL_INTERVAL = 0.5
"""The followers' poll interval (`Subscription`'s default)."""

DRAIN_TIMEOUT = 60.0
"""Most seconds a repetition waits, untimed, for its follower to take all its events."""

DEFAULT_NOTIFY_INTERVAL: float | None = (
    inspect.signature(PostgresEventStore).parameters["notify_interval"].default
)
"""`PostgresEventStore`'s default, which the sides called "default" leave unset."""

NOTES = (
    "subscriptions: eventstore against itself, same store, same interleaved "
    "repetitions; the reference side does the same work without the "
    "subscription (catch-up: read_all paging; appends: no follower). "
    "Latency: per event, handler arrival - its append's return, both "
    "time.monotonic in this process; negative where the follower had the "
    "event before the writer thread ran again. Client CPU: this process's "
    "(time.process_time, every thread, the follower's included) while the "
    "writers ran, per appended event, median of the measured repetitions. The followers run in this "
    "process, so they share its GIL with the writers. The heap is frozen "
    "(gc.freeze) for each workload and collected before every repetition, "
    "so that no full collection falls on one side's timing."
)


# --- catch-up ------------------------------------------------------------------


@attrs.define
class _Seen:
    """What one pass of a side read: each event's id and position, in order."""

    ids: list[uuid.UUID]
    positions: list[LogPosition]
    returned: int | None = None

    def summary(self) -> _Summary:
        """Reduce it to what the check needs, so that no pass keeps its events' ids alive."""
        digest = hashlib.blake2b(b"".join(i.bytes for i in self.ids), digest_size=16)
        return _Summary(
            len(self.ids),
            len(set(self.ids)),
            digest.hexdigest(),
            all(a < b for a, b in pairwise(self.positions)),
            self.positions[-1] if self.positions else None,
            self.returned,
        )


@attrs.frozen
class _Summary:
    """One pass, for the check: counts, a digest of the ids in order, whether positions grew."""

    count: int
    distinct: int
    digest: str
    ordered: bool
    last: LogPosition | None
    returned: int | None


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """
    Freeze the objects alive now out of the garbage collector's sight, for a workload.

    Then `_collected` costs a fraction of a millisecond, not the ~50 ms of
    a full collection of the suite's heap, and a collection that does run
    inside a timed part scans only that workload's objects.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _collected(work: Callable[[], object]) -> float:
    """
    Collect garbage, then return the seconds *work* took.

    Every side starts a repetition with none of the last one's garbage, so
    a collection that one side's allocations made due does not fall on
    whichever side comes next.
    """
    gc.collect()
    return stopwatch(work)


LARGE_BATCH = 2_000
"""The batch size of the catch-up's second subscription side, not judged: what a larger batch buys."""


def _fill(store: PostgresEventStore, streams: int, per_stream: int) -> None:
    """Append *per_stream* events to each of *streams* streams, `BATCH` at a time; wait until all are visible."""
    for s in range(streams):
        for first in range(0, per_stream, BATCH):
            store.append(
                f"s{s}",
                [event(n) for n in range(first, first + BATCH)],
                expected_version=first,
            )
    wait_for_log(store, streams * per_stream)


def catch_up(ctx: Context) -> Result:
    streams = ctx.size(20, 10)
    per_stream = ctx.size(1_000, 500)
    total = streams * per_stream
    store = ctx.store("sub_catch_up")
    _fill(store, streams, per_stream)
    # A full repetition reads the log a few times, so that it lasts long
    # enough (about a second) for the host's swings to even out.
    passes = ctx.size(3, 1)
    sides = {"catch_up": BATCH, "catch_up_large": LARGE_BATCH, "read_all": BATCH}
    seen: dict[str, dict[int, list[_Summary]]] = {side: {} for side in sides}
    last: list[Subscription] = []

    # Every side keeps each event's id and position, no more: the events
    # themselves go at once, as with a handler that does nothing.
    def subscriber(side: str) -> Timed:
        def catch_up_once(rep: int, n: int) -> float:
            got = _Seen([], [])

            def handler(events: list[RecordedEvent]) -> None:
                got.ids.extend([e.event_id for e in events])
                got.positions.extend([e.position for e in events])

            subscription = Subscription(
                store, f"{side}-{rep + 1}-{n}", handler, batch_size=sides[side]
            )

            def work() -> None:
                got.returned = subscription.catch_up()

            elapsed = _collected(work)
            seen[side].setdefault(rep, []).append(got.summary())
            if side == "catch_up":
                last[:] = [subscription]
            return elapsed

        return lambda rep: sum(catch_up_once(rep, n) for n in range(passes))

    def read_once(rep: int) -> float:
        got = _Seen([], [])

        def work() -> None:
            after = None
            while True:
                page = store.read_all(after, limit=BATCH)
                got.ids.extend([e.event_id for e in page])
                got.positions.extend([e.position for e in page])
                if len(page) < BATCH:
                    return
                after = page[-1].position

        elapsed = _collected(work)
        seen["read_all"].setdefault(rep, []).append(got.summary())
        return elapsed

    def reader(rep: int) -> float:
        return sum(read_once(rep) for _ in range(passes))

    with _frozen_heap():
        figures = interleave_sides(
            ctx.repetitions,
            total * passes,
            {
                "catch_up": subscriber("catch_up"),
                "read_all": reader,
                "catch_up_large": subscriber("catch_up_large"),
            },
        )
    outcome = SubscriptionResult(
        "subscription_catch_up",
        f"catch_up() of a fresh subscription (batch_size={BATCH}, a handler keeping the ids) "
        f"over a {total:,}-event log of {streams} streams, {passes}x per repetition, "
        f"vs read_all paging (limit={BATCH}) over the same log",
        "events/s",
        figures["catch_up"],
        figures["read_all"],
        reference=f"read_all(after, limit={BATCH}) paging",
        measured=f"Subscription.catch_up(), batch_size={BATCH}",
        sides=figures,
    )
    outcome.judge_ratio(CATCH_UP_TARGET)
    outcome.notes["large_batch"] = LARGE_BATCH
    outcome.notes["large_vs_read_all"] = round(
        figures["catch_up_large"].median / figures["read_all"].median, 3
    )

    return checked(
        outcome,
        lambda: _check_catch_up(seen, total, passes, ctx.repetitions, last[0]),
    )


def _check_catch_up(
    seen: dict[str, dict[int, list[_Summary]]],
    total: int,
    passes: int,
    repetitions: int,
    subscription: Subscription,
) -> None:
    """Every pass of every side read the whole log, once, in its order; the checkpoint is at its end."""
    logged = seen["read_all"][-1][0]
    assert logged.distinct == total, f"read_all read {logged.distinct:,} of {total:,}"
    for side, reps in seen.items():
        assert sorted(reps) == list(range(-1, repetitions)), side
        for rep, runs in reps.items():
            assert len(runs) == passes, f"{side} repetition {rep}: {len(runs)} passes"
            for n, got in enumerate(runs):
                where = f"{side} repetition {rep}, pass {n}"
                assert got.count == got.distinct == total, (
                    f"{where}: {got.count:,} events, {got.distinct:,} distinct, of {total:,}"
                )
                assert got.digest == logged.digest, (
                    f"{where}: not the log's events in its order"
                )
                assert got.ordered, f"{where}: positions not increasing"
                if got.returned is not None:  # a catch-up's: how many it handled
                    assert got.returned == total, f"{where}: returned {got.returned}"
    status = subscription.status()
    assert status.events_behind == 0, f"{status.events_behind} events behind"
    assert status.handled == total, f"status says {status.handled} handled"
    assert status.position == logged.last, (
        f"checkpoint at {status.position}, log at {logged.last}"
    )


# --- followers: latency, appends with a follower, NOTIFY -------------------------


@attrs.frozen
class _Side:
    """One side of `follow`: how its store notifies, and whether a follower runs."""

    name: str
    label: str
    options: dict[str, Any]
    follower: bool

    @property
    def notify_interval(self) -> float | None:
        return self.options.get("notify_interval", DEFAULT_NOTIFY_INTERVAL)


SIDES = (
    _Side("no_notify", "no NOTIFY", {"notify_interval": None}, follower=False),
    _Side("alone", "default NOTIFY, no follower", {}, follower=False),
    _Side(
        "notify_every", "a NOTIFY per append", {"notify_interval": 1e-9}, follower=False
    ),
    _Side("followed", "default NOTIFY, one follower", {}, follower=True),
    _Side(
        "polled",
        "no NOTIFY, one follower polling",
        {"notify_interval": None},
        follower=True,
    ),
)
"""The sides of `follow`, in the order they are reported; ``polled`` in full runs only."""


class _Follower:
    """One `Subscription.run` in a thread, recording when each event reached its handler."""

    def __init__(self, store: PostgresEventStore) -> None:
        # (event id, stream, version, arrival) per event handed over, in order.
        # Ids as ints, not UUIDs: tuples and dicts of ints, strs and floats
        # drop out of the garbage collector's sight, so what the workload
        # keeps does not lengthen the collections in the timed parts.
        self.arrivals: list[tuple[int, str, int, float]] = []
        self.expected = 0
        self.error: BaseException | None = None
        self.subscription = Subscription(
            store, "follower", self._handle, poll_interval=POLL_INTERVAL
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _handle(self, events: list[RecordedEvent]) -> None:
        now = time.monotonic()
        self.arrivals.extend(
            (e.event_id.int, e.stream_id, e.version, now) for e in events
        )

    def _run(self) -> None:
        try:
            self.subscription.run(self._stop)
        except BaseException as exc:  # reported by the check
            self.error = exc

    def start(self, writer: PostgresEventStore) -> None:
        """Start following, and wait until an event appended now has arrived."""
        self._thread.start()
        writer.append("ready", [event()], expected_version=0)
        self.expect(1)

    def expect(self, count: int) -> None:
        """Wait (at most `DRAIN_TIMEOUT`) for *count* more events than awaited so far."""
        self.expected += count
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while len(self.arrivals) < self.expected and time.monotonic() < deadline:
            if self.error is not None or not self._thread.is_alive():
                return
            time.sleep(0.002)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=DRAIN_TIMEOUT)


def _writers(
    store: PostgresEventStore,
    per_thread: int,
    returned: dict[int, dict[int, float]],
    follower: _Follower | None,
    cpu: list[float],
) -> Timed:
    """
    A repetition: `WRITERS` threads, *per_thread* single-event appends each to stream ``e<rep>-<thread>``.

    When each append returned goes into *returned*, by repetition and event
    id; the process's CPU seconds (`time.process_time`, every thread, the
    follower's too) while the writers ran into *cpu*, for the measured
    repetitions. With a *follower*, the repetition then waits, untimed,
    until it has taken them all.
    """

    def run(rep: int) -> float:
        events = [[[event(i)] for i in range(per_thread)] for _ in range(WRITERS)]
        times: dict[int, float] = {}

        def work(index: int) -> None:
            mine = events[index]
            stream = f"e{rep}-{index}"
            for i in range(per_thread):
                store.append(stream, mine[i], expected_version=i)
                times[mine[i][0].event_id.int] = time.monotonic()

        gc.collect()
        started = time.process_time()
        elapsed = run_threads(WRITERS, work)
        if rep >= 0:
            cpu.append(time.process_time() - started)
        returned[rep] = times
        if follower is not None:
            follower.expect(WRITERS * per_thread)
        return elapsed

    return run


def _percentiles(latencies: list[float]) -> dict[str, float]:
    """p50, p95, p99, max and min of *latencies* (seconds), in milliseconds."""
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "events": len(latencies),
        "p50": round(cuts[49] * 1e3, 2),
        "p95": round(cuts[94] * 1e3, 2),
        "p99": round(cuts[98] * 1e3, 2),
        "max": round(max(latencies) * 1e3, 2),
        "min": round(min(latencies) * 1e3, 2),
        "negative": sum(1 for x in latencies if x < 0),
    }


def _latencies(
    follower: _Follower, returned: dict[int, dict[int, float]]
) -> dict[int, list[float]]:
    """Per measured repetition, each event's arrival less its append's return, in seconds."""
    arrived: dict[int, float] = {}
    for event_id, _, _, at in follower.arrivals:
        arrived.setdefault(event_id, at)
    return {
        rep: [arrived[i] - t for i, t in times.items() if i in arrived]
        for rep, times in returned.items()
        if rep >= 0
    }


def _check_follower(
    side: str,
    follower: _Follower,
    returned: dict[int, dict[int, float]],
    store: PostgresEventStore,
) -> None:
    """Every event appended to *side*'s schema was handled once, each stream in order."""
    assert follower.error is None, f"{side}: follower failed: {follower.error!r}"
    assert follower.subscription.state is SubscriptionState.STOPPED, (
        f"{side}: follower {follower.subscription.state.value}"
    )
    counts = Counter(a[0] for a in follower.arrivals)
    twice = sum(1 for n in counts.values() if n > 1)
    written = {i for times in returned.values() for i in times}
    missed = len(written - set(counts))
    assert (missed, twice) == (0, 0), f"{side}: {missed} events missed, {twice} twice"
    # The appended events and the ready marker, nothing else.
    assert len(counts) == len(written) + 1 == follower.expected, (
        f"{side}: {len(counts)} events handled, {len(written) + 1} appended"
    )
    versions: dict[str, list[int]] = {}
    for _, stream, version, _ in follower.arrivals:
        versions.setdefault(stream, []).append(version)
    for stream, seen in versions.items():
        assert seen == list(range(1, len(seen) + 1)), f"{side}: {stream} out of order"
    status = follower.subscription.status()
    assert status.events_behind == 0, f"{side}: {status.events_behind} behind"
    assert status.handled == len(counts), f"{side}: status says {status.handled}"
    assert store.stream_version("ready") == 1


def follow(ctx: Context) -> list[Result]:
    per_thread = ctx.size(400, 30)
    sides = [s for s in SIDES if s.name != "polled" or not ctx.quick]
    stores = {
        s.name: ctx.store(f"sub_{s.name}", pool_size=WRITERS, **s.options)
        for s in sides
    }
    followers = {
        s.name: _Follower(ctx.same_schema(stores[s.name], notify_interval=None))
        for s in sides
        if s.follower
    }
    returned: dict[str, dict[int, dict[int, float]]] = {s.name: {} for s in sides}
    cpu: dict[str, list[float]] = {s.name: [] for s in sides}
    try:
        for name, follower in followers.items():
            follower.start(stores[name])
        with _frozen_heap():
            figures = interleave_sides(
                ctx.repetitions,
                WRITERS * per_thread,
                {
                    s.name: _writers(
                        stores[s.name],
                        per_thread,
                        returned[s.name],
                        followers.get(s.name),
                        cpu[s.name],
                    )
                    for s in sides
                },
            )
    finally:
        for follower in followers.values():
            follower.stop()
    appends = _appends_result(sides, figures, per_thread)
    appends.notes["client_cpu_us"] = {
        name: round(statistics.median(samples) / (WRITERS * per_thread) * 1e6, 1)
        for name, samples in cpu.items()
    }
    latency = _latency_result(sides, followers, returned)

    def check_appends() -> None:
        for side in sides:
            store = stores[side.name]
            assert sorted(returned[side.name]) == list(range(-1, ctx.repetitions))
            for rep, times in returned[side.name].items():
                assert len(times) == WRITERS * per_thread, f"{side.name}: {rep}"
                for index in range(WRITERS):
                    version = store.stream_version(f"e{rep}-{index}")
                    assert version == per_thread, (
                        f"{side.name} e{rep}-{index}: {version}"
                    )

    def check_followers() -> None:
        assert set(followers) == {s.name for s in sides if s.follower}
        for name, follower in followers.items():
            _check_follower(name, follower, returned[name], stores[name])

    return [checked(appends, check_appends), checked(latency, check_followers)]


def _fmt_interval(value: float | None) -> str:
    return "None" if value is None else f"{value:g}"


def _appends_result(
    sides: list[_Side], figures: dict[str, Figure], per_thread: int
) -> SubscriptionResult:
    outcome = SubscriptionResult(
        "append_with_follower",
        f"{WRITERS} threads, {per_thread} single-event appends each to their own "
        f"stream, one pool of {WRITERS}: one Subscription.run following vs none; "
        "and notify_interval None / default / 1e-9, no follower",
        "events/s",
        figures["followed"],
        figures["alone"],
        reference=f"no follower, notify_interval={_fmt_interval(DEFAULT_NOTIFY_INTERVAL)} (default)",
        measured="one Subscription.run(stop) following, in a thread of this process",
        sides=figures,
    )
    outcome.judge_ratio(FOLLOWER_TARGET)
    reference = figures["no_notify"].median
    outcome.notes["vs_no_notify"] = {
        s.name: round(figures[s.name].median / reference, 3) for s in sides
    }
    outcome.notes["notify_interval"] = {s.name: s.notify_interval for s in sides}
    outcome.notes["follower"] = {s.name: s.follower for s in sides}
    outcome.notes["labels"] = {s.name: s.label for s in sides}
    return outcome


def _latency_result(
    sides: list[_Side],
    followers: dict[str, _Follower],
    returned: dict[str, dict[int, dict[int, float]]],
) -> SubscriptionResult:
    per_rep: dict[str, Figure] = {}
    pooled: dict[str, dict[str, float]] = {}
    for name, follower in followers.items():
        by_rep = _latencies(follower, returned[name])
        if all(by_rep.values()) and by_rep:
            per_rep[name] = Figure.of(
                [_percentiles(samples)["p99"] for _, samples in sorted(by_rep.items())]
            )
            pooled[name] = _percentiles([x for s in by_rep.values() for x in s])
    outcome = SubscriptionResult(
        "subscription_latency",
        f"one Subscription.run following {WRITERS} threads' single-event appends "
        "(the followed repetitions of append_with_follower): handler arrival - "
        f"append return; LISTEN/NOTIFY (notify_interval={_fmt_interval(DEFAULT_NOTIFY_INTERVAL)}, "
        f"default) and polling alone (notify_interval=None, poll_interval={POLL_INTERVAL:g})",
        "ms",
        per_rep.get("followed"),
        reference="",
        measured="p99 of each repetition",
        sides=per_rep,
        latency=pooled,
    )
    outcome.notes["labels"] = {s.name: s.label for s in sides if s.follower}
    outcome.notes["notify_interval"] = {
        s.name: s.notify_interval for s in sides if s.follower
    }
    outcome.notes["poll_interval"] = POLL_INTERVAL
    outcome.target = f"p99 <= {LATENCY_TARGET_MS:g} ms (LISTEN/NOTIFY)"
    p99 = pooled.get("followed", {}).get("p99")
    outcome.met = p99 is not None and p99 <= LATENCY_TARGET_MS
    return outcome


# --- the report ------------------------------------------------------------------


def _fmt_figure(figure: Figure | None, digits: int = 0) -> str:
    if figure is None:
        return "-"
    return f"{figure.median:,.{digits}f} [{figure.min:,.{digits}f}-{figure.max:,.{digits}f}]"


def _fmt_met(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "NOT met")


def _check(result: Result) -> str:
    return "ok" if result.check_passed else f"FAILED: {result.check_error}"


def table(results: list[SubscriptionResult]) -> str:
    """Render the subscription workloads: ratios, NOTIFY's cost, latencies; Markdown tables."""
    by_name = {r.name: r for r in results}
    blocks: list[str] = []
    ratios = [
        r
        for r in results
        if r.name in ("subscription_catch_up", "append_with_follower")
    ]
    if ratios:
        lines = [
            "| workload | unit | reference | reference median [min-max] | measured "
            "| measured median [min-max] | ratio | target | met | check |",
            "|" + " --- |" * 10,
        ]
        for r in ratios:
            lines.append(
                f"| {r.name} | {r.unit} | {r.reference} | {_fmt_figure(r.baseline)} | "
                f"{r.measured} | {_fmt_figure(r.eventstore)} | "
                f"{'-' if r.ratio is None else f'{r.ratio:.2f}'} | {r.target or '-'} | "
                f"{_fmt_met(r.met)} | {_check(r)} |"
            )
            large = r.sides.get("catch_up_large")
            if large is not None:
                lines.append(
                    f"| {r.name} (not judged) | {r.unit} | {r.reference} | "
                    f"{_fmt_figure(r.baseline)} | Subscription.catch_up(), "
                    f"batch_size={r.notes['large_batch']:,} | {_fmt_figure(large)} | "
                    f"{r.notes['large_vs_read_all']:.2f} | - | - | {_check(r)} |"
                )
        blocks.append("\n".join(lines))
    appends = by_name.get("append_with_follower")
    if appends is not None and appends.sides:
        lines = [
            f"| {WRITERS}-thread appends (append_with_follower) | notify_interval "
            "| follower | events/s median [min-max] | / no NOTIFY "
            "| client CPU µs per event |",
            "|" + " --- |" * 6,
        ]
        for name, figure in appends.sides.items():
            interval = appends.notes["notify_interval"][name]
            follower = (
                f"Subscription.run, poll_interval={POLL_INTERVAL:g}"
                if appends.notes["follower"][name]
                else "none"
            )
            lines.append(
                f"| {appends.notes['labels'][name]} | {_fmt_interval(interval)} | "
                f"{follower} | {_fmt_figure(figure)} | "
                f"{appends.notes['vs_no_notify'][name]:.2f} | "
                f"{appends.notes.get('client_cpu_us', {}).get(name, '-')} |"
            )
        blocks.append("\n".join(lines))
    latency = by_name.get("subscription_latency")
    if latency is not None:
        lines = [
            "| follower (subscription_latency) | notify_interval | poll_interval "
            "| events | p50 ms | p95 ms | p99 ms | max ms | p99 per repetition, ms "
            "| target | met | check |",
            "|" + " --- |" * 12,
        ]
        for name, label in latency.notes.get("labels", {}).items():
            pooled = latency.latency.get(name)
            if pooled is None:
                continue
            judged = name == "followed"
            lines.append(
                f"| {label} | {_fmt_interval(latency.notes['notify_interval'][name])} | "
                f"{latency.notes['poll_interval']:g} | {pooled['events']:,} | "
                f"{pooled['p50']:.1f} | {pooled['p95']:.1f} | {pooled['p99']:.1f} | "
                f"{pooled['max']:.1f} | {_fmt_figure(latency.sides.get(name), 1)} | "
                f"{latency.target if judged else '-'} | "
                f"{_fmt_met(latency.met) if judged else '-'} | {_check(latency)} |"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def summary(results: list[Result]) -> dict[str, Any]:
    """Return the subscription figures against their targets, for the JSON report."""
    out: dict[str, Any] = {}
    for r in results:
        if not isinstance(r, SubscriptionResult):
            continue
        entry: dict[str, Any] = {"target": r.target, "met": r.met}
        if r.name == "subscription_latency":
            entry["latency_ms"] = r.latency
        else:
            entry["ratio"] = r.ratio
        if "large_vs_read_all" in r.notes:
            entry[f"ratio_batch_size_{r.notes['large_batch']}"] = r.notes[
                "large_vs_read_all"
            ]
        if "vs_no_notify" in r.notes:
            entry["vs_no_notify"] = r.notes["vs_no_notify"]
        out[r.name] = entry
    return out


WORKLOADS: dict[str, Callable[[Context], Result | list[Result]]] = {
    "subscription_catch_up": catch_up,
    "append_with_follower": follow,
    "subscription_latency": follow,
}
"""The subscription workloads in the order they run; `follow` makes the last two at once."""
