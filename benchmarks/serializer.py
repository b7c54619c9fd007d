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
from eventstore.serialization._converter import _s_uuid as _fast_uuid


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


def _money(money: Money) -> dict[str, Any]:
    return {"amount": str(money.amount), "currency": money.currency}


def _hand_encode(event: FindingsRecorded) -> dict[str, Any]:
    """This one class's payload, written out by hand, with no checks at all."""
    reviewer, policy = event.reviewer, event.policy
    return {
        "document_id": str(event.document_id),
        "recorded_at": event.recorded_at.isoformat(),
        "title": event.title,
        "revision": event.revision,
        "score": event.score,
        "budget": str(event.budget),
        "severity": event.severity.value,
        "reviewer": {
            "id": str(reviewer.id),
            "name": reviewer.name,
            "email": reviewer.email,
        },
        "policy": {
            "repository_id": str(policy.repository_id),
            "version": policy.version,
            "tags": sorted(policy.tags),
        },
        "findings": [
            {
                "code": f.code,
                "severity": f.severity.value,
                "line": f.line,
                "cost": _money(f.cost),
            }
            for f in event.findings
        ],
        "total": _money(event.total),
        "approved": event.approved,
        "comment": event.comment,
        "due": event.due.isoformat(),
        "labels": list(event.labels),
        "attributes": dict(event.attributes),
        "previous_score": event.previous_score,
        "page_count": event.page_count,
        "language": event.language,
        "checksum": event.checksum,
    }


_SEVERITY = {member.value: member for member in Severity}


def _hand_decode(data: dict[str, Any]) -> FindingsRecorded:
    """
    This one class back from its payload, written out by hand, with no checks.

    Leaf conversions as fast as this machine does them: the serializer's own
    UUID parser (a third of ``uuid.UUID(text)``), a dict for enums.
    """
    reviewer, policy, total = data["reviewer"], data["policy"], data["total"]
    return FindingsRecorded(
        _fast_uuid(data["document_id"]),
        dt.datetime.fromisoformat(data["recorded_at"]),
        data["title"],
        data["revision"],
        data["score"],
        Decimal(data["budget"]),
        _SEVERITY[data["severity"]],
        Reviewer(_fast_uuid(reviewer["id"]), reviewer["name"], reviewer["email"]),
        PolicyRef(
            _fast_uuid(policy["repository_id"]),
            policy["version"],
            frozenset(policy["tags"]),
        ),
        tuple(
            [
                Finding(
                    f["code"],
                    _SEVERITY[f["severity"]],
                    f["line"],
                    Money(Decimal(f["cost"]["amount"]), f["cost"]["currency"]),
                )
                for f in data["findings"]
            ]
        ),
        Money(Decimal(total["amount"]), total["currency"]),
        data["approved"],
        data["comment"],
        dt.date.fromisoformat(data["due"]),
        tuple(data["labels"]),
        dict(data["attributes"]),
        data["previous_score"],
        data["page_count"],
        data["language"],
        data["checksum"],
    )


def run(quick: bool) -> dict[str, Any]:
    """
    Measure round trips/s; return median, min, max and the settings used.

    Each repetition also times a check-free codec written by hand for this
    one class (`_hand_encode`, `_hand_decode`): a ceiling that no serializer
    of these attrs objects passes on this machine, measured in the same
    repetitions so that the machine's drift hits both alike.
    """
    registry = make_registry()
    event = make_event()
    payload = registry.encode(event)
    assert registry.decode(payload.type, payload.schema_version, payload.data) == event
    assert _hand_encode(event) == payload.data
    assert _hand_decode(payload.data) == event
    repetitions = 5 if quick else 7
    count = 2_000 if quick else 20_000
    encode = registry.encode
    decode = registry.decode
    type_name, version, data = payload.type, payload.schema_version, payload.data
    rates, encode_rates, decode_rates, ceiling_rates = [], [], [], []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(count):
            p = encode(event)
            decode(p.type, p.schema_version, p.data)
        rates.append(count / (time.perf_counter() - start))
        start = time.perf_counter()
        for _ in range(count):
            _hand_decode(_hand_encode(event))
        ceiling_rates.append(count / (time.perf_counter() - start))
        start = time.perf_counter()
        for _ in range(count):
            encode(event)
        encode_rates.append(count / (time.perf_counter() - start))
        start = time.perf_counter()
        for _ in range(count):
            decode(type_name, version, data)
        decode_rates.append(count / (time.perf_counter() - start))
    return {
        "name": "serializer_roundtrip_20_fields",
        "unit": "round trips/s",
        "median": statistics.median(rates),
        "min": min(rates),
        "max": max(rates),
        "encode_median": statistics.median(encode_rates),
        "decode_median": statistics.median(decode_rates),
        "ceiling_median": statistics.median(ceiling_rates),
        "share_of_ceiling": statistics.median(
            [ours / ceiling for ours, ceiling in zip(rates, ceiling_rates, strict=True)]
        ),
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
        f"ceiling, a check-free codec hand-written for this class: "
        f"{result['ceiling_median']:,.0f}/s (eventstore reaches "
        f"{result['share_of_ceiling']:.0%} of it)"
    )


if __name__ == "__main__":
    main()
