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
  store's default and ``1e-9`` (a NOTIFY per append), each against None;
  not judged, the same appends followed by a `Subscription.run` in another
  process, and by a bare ``read_all`` loop in a thread (the floor of
  reading the log in this process). The judged ratio is the median over
  short paired rounds (no follower, followed, and no NOTIFY as an A/A
  control, back to back) of each round's followed / unfollowed rate. Where
  the server runs on this machine, the CPU seconds of this process, the
  server's processes and the follower process per appended event, and
  their ratio to the unfollowed side's ("cost ratio"), are reported too.
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

import abc
import contextlib
import gc
import hashlib
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from itertools import pairwise
from pathlib import Path
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

READ_ALL_EVERY = 0.05
"""How often the ``read_all_loop`` side reads the log: as often as a busy store notifies."""

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
    """One side of `follow`: how its store notifies, and who follows its log."""

    name: str
    label: str
    options: dict[str, Any]
    follower: str = ""
    """``""``: nobody; ``"thread"``: a `Subscription.run` in a thread of this
    process; ``"process"``: one in a process of its own; ``"read_all"``: a
    bare ``read_all`` loop in a thread, the floor of reading the log here."""

    @property
    def notify_interval(self) -> float | None:
        return self.options.get("notify_interval", DEFAULT_NOTIFY_INTERVAL)


SIDES = (
    _Side("no_notify", "no NOTIFY", {"notify_interval": None}),
    _Side("alone", "default NOTIFY, no follower", {}),
    _Side("notify_every", "a NOTIFY per append", {"notify_interval": 1e-9}),
    _Side("followed", "default NOTIFY, one follower", {}, follower="thread"),
    _Side(
        "read_all_loop",
        f"default NOTIFY, a read_all loop every {READ_ALL_EVERY * 1e3:g} ms (not judged)",
        {},
        follower="read_all",
    ),
    _Side(
        "followed_process",
        "default NOTIFY, one follower in another process (not judged)",
        {},
        follower="process",
    ),
    _Side(
        "polled",
        "no NOTIFY, one follower polling",
        {"notify_interval": None},
        follower="thread",
    ),
)
"""The sides of `follow`, in the order they are reported; ``polled`` in full runs only."""

FOLLOWER_LABELS = {
    "": "none",
    "thread": f"Subscription.run in a thread, poll_interval={POLL_INTERVAL:g}",
    "process": f"Subscription.run in another process, poll_interval={POLL_INTERVAL:g}",
    "read_all": f"read_all pages every {READ_ALL_EVERY * 1e3:g} ms, in a thread",
}
"""How the appends table names each kind of follower."""


class _Follower(abc.ABC):
    """
    Who follows one side's log, recording when each event reached it.

    Each kind starts following, says how many events have arrived, and
    stops; `check` then says whether it ended well.
    """

    def __init__(self) -> None:
        # (event id, stream, version, arrival) per event handed over, in order.
        # Ids as ints, not UUIDs: tuples and dicts of ints, strs and floats
        # drop out of the garbage collector's sight, so what the workload
        # keeps does not lengthen the collections in the timed parts.
        self.arrivals: list[tuple[int, str, int, float]] = []
        self.expected = 0
        self.error: BaseException | str | None = None

    def _record(self, events: list[RecordedEvent]) -> None:
        now = time.monotonic()
        self.arrivals.extend(
            (e.event_id.int, e.stream_id, e.version, now) for e in events
        )

    @abc.abstractmethod
    def _start(self) -> None: ...

    def _arrived(self) -> int:
        return len(self.arrivals)

    @abc.abstractmethod
    def _alive(self) -> bool: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    def check(self, side: str, handled: int) -> None:
        """After `stop`: it ended without an error, and its own count agrees with *handled*."""
        assert self.error is None, f"{side}: follower failed: {self.error!r}"

    def start(self, writer: PostgresEventStore) -> None:
        """Start following, and wait until an event appended now has arrived."""
        self._start()
        writer.append("ready", [event()], expected_version=0)
        self.expect(1)

    def expect(self, count: int) -> None:
        """Wait (at most `DRAIN_TIMEOUT`) for *count* more events than awaited so far."""
        self.expected += count
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while self._arrived() < self.expected and time.monotonic() < deadline:
            if self.error is not None or not self._alive():
                return
            time.sleep(0.002)


class _InThread(_Follower):
    """A follower in a thread of this process: `_follow` until *stop* is set."""

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @abc.abstractmethod
    def _follow(self, stop: threading.Event) -> None: ...

    def _run(self) -> None:
        try:
            self._follow(self._stop)
        except BaseException as exc:  # reported by the check
            self.error = exc

    def _start(self) -> None:
        self._thread.start()

    def _alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=DRAIN_TIMEOUT)


class _ThreadFollower(_InThread):
    """One `Subscription.run` in a thread of this process."""

    def __init__(self, store: PostgresEventStore) -> None:
        super().__init__()
        self.subscription = Subscription(
            store, "follower", self._record, poll_interval=POLL_INTERVAL
        )

    def _follow(self, stop: threading.Event) -> None:
        self.subscription.run(stop)

    def check(self, side: str, handled: int) -> None:
        super().check(side, handled)
        state = self.subscription.state
        assert state is SubscriptionState.STOPPED, f"{side}: follower {state.value}"
        status = self.subscription.status()
        assert status.events_behind == 0, f"{side}: {status.events_behind} behind"
        assert status.handled == handled, f"{side}: status says {status.handled}"


class _ReadAllLoop(_InThread):
    """
    A bare reader in a thread: every `READ_ALL_EVERY` s, ``read_all`` pages until a short one.

    No lock, no checkpoint, no wake-ups: what reading the log costs the
    writers of this process, the floor under a follower's cost.
    """

    def __init__(self, store: PostgresEventStore) -> None:
        super().__init__()
        self._store = store

    def _follow(self, stop: threading.Event) -> None:
        after: LogPosition | None = None
        while not stop.wait(READ_ALL_EVERY):
            while True:
                page = self._store.read_all(after, limit=BATCH)
                if page:
                    self._record(page)
                    after = page[-1].position
                if len(page) < BATCH:
                    break


class _ProcessFollower(_Follower):
    """One `Subscription.run` in a process of its own (`benchmarks.follower_process`)."""

    def __init__(self, dsn: str, schema: str) -> None:
        super().__init__()
        self._args = [sys.executable, "-m", "benchmarks.follower_process", dsn, schema]
        self._out = Path(tempfile.mkdtemp(prefix="follower-")) / "arrivals.json"
        self._process: subprocess.Popen[str] | None = None
        self._counted = 0
        self._state = ""
        self._reader: threading.Thread | None = None

    def _start(self) -> None:
        self._process = subprocess.Popen(  # noqa: S603  # our own module, our own arguments
            [*self._args, str(self._out)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(
            target=self._read_counts, args=(self._process.stdout,), daemon=True
        )
        self._reader.start()

    @property
    def pid(self) -> int:
        """The follower process's id, once started."""
        assert self._process is not None, "not started"
        return self._process.pid

    def _read_counts(self, lines: Iterable[str]) -> None:
        # The child prints how many events it has taken after every batch.
        for line in lines:
            self._counted = int(line)

    def _arrived(self) -> int:
        return self._counted

    def _alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            code = self._process.wait(timeout=DRAIN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = self._process.wait()
        if self._reader is not None:
            self._reader.join(timeout=DRAIN_TIMEOUT)
        if not self._out.exists():
            self.error = f"the follower process exited {code} and wrote nothing"
            return
        report = json.loads(self._out.read_text())
        shutil.rmtree(self._out.parent, ignore_errors=True)
        self.arrivals = [(a[0], a[1], a[2], a[3]) for a in report["arrivals"]]
        self._state = report["state"]
        if code or report["error"] or report["alive"]:
            self.error = f"exit {code}: {report['error']}, alive: {report['alive']}"

    def check(self, side: str, handled: int) -> None:
        super().check(side, handled)
        assert self._state == SubscriptionState.STOPPED.value, f"{side}: {self._state}"
        assert self._counted == handled, f"{side}: it counted {self._counted}"


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> tuple[str, int, float] | None:
    """*pid*'s command name, parent and CPU seconds (user + system) from ``/proc``; None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


@attrs.define
class _MachineCpu:
    """
    CPU seconds spent so far by this process, the server's processes and the follower processes.

    The server's are the postmaster's and its children's.
    """

    postmaster: int
    followers: list[int] = attrs.field(factory=list)

    @classmethod
    def of(cls, conn: Any) -> _MachineCpu | None:
        """Find the server by the parent of *conn*'s backend; None when it runs on another machine."""
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        backend = _cpu_of(int(row[0]))
        if backend is None or not backend[0].startswith("postgres"):
            return None
        return cls(backend[1])

    def seconds(self) -> float:
        total = time.process_time()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            found = _cpu_of(pid)
            if found is not None and (
                pid == self.postmaster
                or found[1] == self.postmaster
                or pid in self.followers
            ):
                total += found[2]
        return total


def _writers(
    store: PostgresEventStore,
    per_thread: int,
    returned: dict[int, dict[int, float]],
    follower: _Follower | None,
    cpu: list[float],
    *,
    machine: tuple[_MachineCpu, list[float]] | None = None,
) -> Timed:
    """
    A repetition: `WRITERS` threads, *per_thread* single-event appends each to stream ``e<rep>-<thread>``.

    When each append returned goes into *returned*, by repetition and event
    id; the process's CPU seconds (`time.process_time`, every thread, the
    follower's too) while the writers ran into *cpu*, for the measured
    repetitions. With a *follower*, the repetition then waits, untimed,
    until it has taken them all. With *machine*, the CPU seconds of this
    process, the server and the follower processes, from the writers' start
    until the follower has taken their events, go into its list.
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
        machine_started = machine[0].seconds() if machine is not None else 0.0
        started = time.process_time()
        elapsed = run_threads(WRITERS, work)
        if rep >= 0:
            cpu.append(time.process_time() - started)
        returned[rep] = times
        if follower is not None:
            follower.expect(WRITERS * per_thread)
        if machine is not None and rep >= 0:
            machine[1].append(machine[0].seconds() - machine_started)
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
    counts = Counter(a[0] for a in follower.arrivals)
    follower.check(side, len(counts))
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
    assert store.stream_version("ready") == 1


def _follower(ctx: Context, side: _Side, store: PostgresEventStore) -> _Follower:
    """Make *side*'s follower of *store*'s schema, from a store of its own (a pool of 1, no NOTIFY)."""
    if side.follower == "process":
        return _ProcessFollower(ctx.dsn, store.schema)
    reader = ctx.same_schema(store, notify_interval=None)
    if side.follower == "read_all":
        return _ReadAllLoop(reader)
    return _ThreadFollower(reader)


PAIRED = ("alone", "followed", "no_notify")
"""The sides of `follow`'s paired rounds: the judged two, and an A/A control."""

PAIRED_BASE = 1_000
"""The first repetition number of the paired rounds (their streams are ``e1000-…``)."""


def _renumbered(timed: Timed, first: int) -> Timed:
    """*timed*, its repetitions numbered from *first*: their streams are new ones."""
    return lambda rep: timed(first + rep)


def _paired_ratios(figures: dict[str, Figure]) -> dict[str, dict[str, float]]:
    """Per paired side, the median, min and max over the rounds of its rate / ``alone``'s rate in the same round."""
    alone = figures["alone"].samples
    ratios = {}
    for name, figure in figures.items():
        per_round = [x / y for x, y in zip(figure.samples, alone, strict=True)]
        ratios[name] = {
            "median": round(statistics.median(per_round), 3),
            "min": round(min(per_round), 3),
            "max": round(max(per_round), 3),
        }
    return ratios


def follow(ctx: Context) -> list[Result]:
    per_thread = ctx.size(1_000, 30)
    paired_per_thread = ctx.size(250, 30)
    rounds = ctx.size(15, 3)
    sides = [s for s in SIDES if s.name != "polled" or not ctx.quick]
    stores = {
        s.name: ctx.store(f"sub_{s.name}", pool_size=WRITERS, **s.options)
        for s in sides
    }
    followers = {s.name: _follower(ctx, s, stores[s.name]) for s in sides if s.follower}
    returned: dict[str, dict[int, dict[int, float]]] = {s.name: {} for s in sides}
    cpu: dict[str, list[float]] = {s.name: [] for s in sides}
    machine_cpu: dict[str, list[float]] = {s.name: [] for s in sides}
    machine = _MachineCpu.of(ctx.admin)

    def writers(name: str, per: int, samples: list[float], *, measured: bool) -> Timed:
        return _writers(
            stores[name],
            per,
            returned[name],
            followers.get(name),
            samples,
            machine=(machine, machine_cpu[name])
            if machine is not None and measured
            else None,
        )

    try:
        for name, follower in followers.items():
            follower.start(stores[name])
            if machine is not None and isinstance(follower, _ProcessFollower):
                machine.followers.append(follower.pid)
        with _frozen_heap():
            figures = interleave_sides(
                ctx.repetitions,
                WRITERS * per_thread,
                {
                    s.name: writers(s.name, per_thread, cpu[s.name], measured=True)
                    for s in sides
                },
            )
            # Then short rounds of the judged sides back to back: each round's
            # ratio compares repetitions a second apart, not the whole run's
            # medians, which the host's swings move by more than 5%.
            paired = interleave_sides(
                rounds,
                WRITERS * paired_per_thread,
                {
                    name: _renumbered(
                        writers(name, paired_per_thread, [], measured=False),
                        PAIRED_BASE,
                    )
                    for name in PAIRED
                },
                warmup=False,
            )
    finally:
        for follower in followers.values():
            follower.stop()
    appends = _appends_result(sides, figures, per_thread)
    appends.notes["client_cpu_us"] = {
        name: round(statistics.median(samples) / (WRITERS * per_thread) * 1e6, 1)
        for name, samples in cpu.items()
    }
    if machine is not None:
        per_event = {
            name: statistics.median(samples) / (WRITERS * per_thread) * 1e6
            for name, samples in machine_cpu.items()
        }
        appends.notes["machine_cpu_us"] = {k: round(v, 1) for k, v in per_event.items()}
        # What the box can do is inversely proportional to what an event
        # costs it, while its cores are saturated: this ratio is the
        # throughput ratio without the host's swings.
        appends.notes["cost_ratio"] = {
            name: round(per_event["alone"] / cost, 3)
            for name, cost in per_event.items()
        }
    appends.notes["paired"] = {
        "rounds": rounds,
        "events_per_repetition": WRITERS * paired_per_thread,
        "vs_alone": _paired_ratios(paired),
    }
    judged = appends.notes["paired"]["vs_alone"]["followed"]["median"]
    appends.target = f"paired ratio >= {FOLLOWER_TARGET:g}"
    appends.met = judged >= FOLLOWER_TARGET
    latency = _latency_result(sides, followers, returned)

    def check_appends() -> None:
        for side in sides:
            store = stores[side.name]
            reps = list(range(-1, ctx.repetitions))
            if side.name in PAIRED:
                reps += range(PAIRED_BASE, PAIRED_BASE + rounds)
            assert sorted(returned[side.name]) == reps, side.name
            for rep, times in returned[side.name].items():
                per = paired_per_thread if rep >= PAIRED_BASE else per_thread
                assert len(times) == WRITERS * per, f"{side.name}: {rep}"
                for index in range(WRITERS):
                    version = store.stream_version(f"e{rep}-{index}")
                    assert version == per, f"{side.name} e{rep}-{index}: {version}"

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


def _paired_rows(r: SubscriptionResult, paired: dict[str, Any]) -> list[str]:
    """The judged paired rounds of ``append_with_follower``, and their A/A control."""
    rows = []
    for name, what, judged in (
        ("followed", "one Subscription.run following", True),
        ("no_notify", "no NOTIFY, no follower: the A/A control", False),
    ):
        ratio = paired["vs_alone"][name]
        rows.append(
            f"| {r.name} (paired: {paired['rounds']} rounds of "
            f"{paired['events_per_repetition']:,} events each side) | ratio | "
            f"the same round's no follower | - | {what} | - | "
            f"{ratio['median']:.2f} [{ratio['min']:.2f}-{ratio['max']:.2f}] | "
            f"{r.target if judged else '-'} | {_fmt_met(r.met) if judged else '-'} | "
            f"{_check(r)} |"
        )
    return rows


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
            paired = r.notes.get("paired")
            lines.append(
                f"| {r.name} | {r.unit} | {r.reference} | {_fmt_figure(r.baseline)} | "
                f"{r.measured} | {_fmt_figure(r.eventstore)} | "
                f"{'-' if r.ratio is None else f'{r.ratio:.2f}'} | "
                f"{'-' if paired else r.target or '-'} | "
                f"{'-' if paired else _fmt_met(r.met)} | {_check(r)} |"
            )
            if paired:
                lines.extend(_paired_rows(r, paired))
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
            "| client CPU µs per event | machine CPU µs per event "
            "| cost ratio (default NOTIFY, no follower = 1) |",
            "|" + " --- |" * 8,
        ]
        for name, figure in appends.sides.items():
            interval = appends.notes["notify_interval"][name]
            follower = FOLLOWER_LABELS[appends.notes["follower"][name]]
            lines.append(
                f"| {appends.notes['labels'][name]} | {_fmt_interval(interval)} | "
                f"{follower} | {_fmt_figure(figure)} | "
                f"{appends.notes['vs_no_notify'][name]:.2f} | "
                f"{appends.notes.get('client_cpu_us', {}).get(name, '-')} | "
                f"{appends.notes.get('machine_cpu_us', {}).get(name, '-')} | "
                f"{appends.notes.get('cost_ratio', {}).get(name, '-')} |"
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
        if "paired" in r.notes:
            entry["paired_vs_alone"] = r.notes["paired"]["vs_alone"]
        if "cost_ratio" in r.notes:
            entry["cost_ratio"] = r.notes["cost_ratio"]
        out[r.name] = entry
    return out


WORKLOADS: dict[str, Callable[[Context], Result | list[Result]]] = {
    "subscription_catch_up": catch_up,
    "append_with_follower": follow,
    "subscription_latency": follow,
}
"""The subscription workloads in the order they run; `follow` makes the last two at once."""
