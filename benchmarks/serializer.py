"""
Benchmark: encode + decode round trips of a 20-field nested event.

Run ``python -m benchmarks.serializer [--quick]``. Prints round trips per
second (median of the repetitions, with min and max); `run` returns the same
figures for the benchmark harness.
"""

from __future__ import annotations

import argparse
import datetime as dt
import enum
import statistics
import time
import uuid
from decimal import Decimal
from typing import Any

import attrs

from eventstore.serialization import Registry


class Severity(enum.Enum):
    LOW = "low"
    HIGH = "high"


@attrs.frozen
class Money:
    amount: Decimal
    currency: str


@attrs.frozen
class Reviewer:
    id: uuid.UUID
    name: str
    email: str | None


@attrs.frozen
class Finding:
    code: str
    severity: Severity
    line: int
    cost: Money


@attrs.frozen
class PolicyRef:
    repository_id: uuid.UUID
    version: int
    tags: frozenset[str]


@attrs.frozen
class FindingsRecorded:
    """20 fields: scalars, 4 kinds of nested value objects, a tuple of them."""

    document_id: uuid.UUID
    recorded_at: dt.datetime
    title: str
    revision: int
    score: float
    budget: Decimal
    severity: Severity
    reviewer: Reviewer
    policy: PolicyRef
    findings: tuple[Finding, ...]
    total: Money
    approved: bool
    comment: str | None
    due: dt.date
    labels: tuple[str, ...]
    attributes: dict[str, str]
    previous_score: float | None
    page_count: int
    language: str
    checksum: str


def make_registry() -> Registry:
    registry = Registry()
    registry.add(FindingsRecorded, "document.findings_recorded", version=1)
    return registry


def make_event() -> FindingsRecorded:
    reviewer = Reviewer(uuid.uuid4(), "Ada", "ada@example.com")
    findings = tuple(
        Finding(f"F{i}", Severity.HIGH, i * 10, Money(Decimal("12.50"), "EUR"))
        for i in range(3)
    )
    return FindingsRecorded(
        document_id=uuid.uuid4(),
        recorded_at=dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC),
        title="Q3 data retention policy",
        revision=7,
        score=0.875,
        budget=Decimal("1999.99"),
        severity=Severity.LOW,
        reviewer=reviewer,
        policy=PolicyRef(uuid.uuid4(), 3, frozenset({"gdpr", "retention"})),
        findings=findings,
        total=Money(Decimal("37.50"), "EUR"),
        approved=False,
        comment=None,
        due=dt.date(2026, 12, 31),
        labels=("legal", "q3"),
        attributes={"owner": "legal", "region": "eu"},
        previous_score=0.5,
        page_count=42,
        language="en",
        checksum="a" * 40,
    )


def _parts(event: FindingsRecorded) -> tuple[Any, ...]:
    """The event's field values, nested objects taken apart into tuples."""
    return (
        attrs.astuple(event, recurse=False),
        attrs.astuple(event.reviewer),
        attrs.astuple(event.policy),
        tuple(
            (f.code, f.severity, f.line, attrs.astuple(f.cost)) for f in event.findings
        ),
        attrs.astuple(event.total),
    )


def _build(parts: tuple[Any, ...]) -> FindingsRecorded:
    """Call the constructors of the event and its 9 nested objects, nothing else."""
    fields, reviewer, policy, findings, total = parts
    return FindingsRecorded(
        *fields[:7],
        Reviewer(*reviewer),
        PolicyRef(*policy),
        tuple(
            [
                Finding(code, severity, line, Money(*cost))
                for code, severity, line, cost in findings
            ]
        ),
        Money(*total),
        *fields[11:],
    )


def construction_ceiling(count: int, repetitions: int) -> float:
    """
    Return how many times per second the event's 10 attrs objects can be built.

    From values already decoded, with no checks: the least work any decoder
    that returns these attrs objects must do, so decoding (and a round trip)
    can never be faster on this machine.
    """
    event = make_event()
    parts = _parts(event)
    assert _build(parts) == event
    rates = []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(count):
            _build(parts)
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def run(quick: bool) -> dict[str, Any]:
    """Measure round trips/s; return median, min, max and the settings used."""
    registry = make_registry()
    event = make_event()
    payload = registry.encode(event)
    assert registry.decode(payload.type, payload.schema_version, payload.data) == event
    repetitions = 5 if quick else 7
    count = 2_000 if quick else 20_000
    encode = registry.encode
    decode = registry.decode
    type_name, version, data = payload.type, payload.schema_version, payload.data
    rates, encode_rates, decode_rates = [], [], []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(count):
            p = encode(event)
            decode(p.type, p.schema_version, p.data)
        rates.append(count / (time.perf_counter() - start))
        start = time.perf_counter()
        for _ in range(count):
            encode(event)
        encode_rates.append(count / (time.perf_counter() - start))
        start = time.perf_counter()
        for _ in range(count):
            decode(type_name, version, data)
        decode_rates.append(count / (time.perf_counter() - start))
    ceiling = construction_ceiling(count, repetitions)
    return {
        "name": "serializer_roundtrip_20_fields",
        "construction_ceiling": ceiling,
        "unit": "round trips/s",
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "encode_median": statistics.median(encode_rates),
        "decode_median": statistics.median(decode_rates),
        "repetitions": repetitions,
        "iterations": count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    result = run(parser.parse_args().quick)
    print(
        f"encode+decode, 20-field nested event: {result['median']:,.0f} round trips/s "
        f"(median of {result['repetitions']}; min {result['min']:,.0f}, "
        f"max {result['max']:,.0f})\n"
        f"encode alone: {result['encode_median']:,.0f}/s; decode alone: "
        f"{result['decode_median']:,.0f}/s\n"
        f"building the 10 attrs objects alone (no decoding): "
        f"{result['construction_ceiling']:,.0f}/s"
    )


if __name__ == "__main__":
    main()
