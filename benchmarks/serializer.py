"""
Benchmark: encode + decode round trips of a 20-field nested event.

Run ``python -m benchmarks.serializer [--quick]``. Prints round trips per
second (median of the repetitions, with min and max), against a codec
written by hand for the class, timed in the same interleaved repetitions;
`run` returns the same figures for the benchmark harness.
"""

from __future__ import annotations

import argparse
import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

import attrs

from benchmarks.harness import interleave_sides, stopwatch
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

    The repetitions also time a check-free codec written by hand for this
    one class (`_hand_encode`, `_hand_decode`): a ceiling that no serializer
    of these attrs objects passes on this machine. Every side runs through
    the harness's `interleave_sides`, as the other workloads do: one
    unmeasured warm-up each, the order rotated every repetition, each
    repetition from a collected, frozen heap. The last object each side
    produced is compared with the event (or its payload) afterwards, and
    ``check_error`` says which were wrong, if any.
    """
    registry = make_registry()
    event = make_event()
    payload = registry.encode(event)
    repetitions = 5 if quick else 7
    count = 2_000 if quick else 20_000
    encode = registry.encode
    decode = registry.decode
    type_name, version, data = payload.type, payload.schema_version, payload.data
    last: dict[str, Any] = {}

    def round_trips(rep: int) -> float:
        def work() -> None:
            for _ in range(count):
                p = encode(event)
                last["round trip"] = decode(p.type, p.schema_version, p.data)

        return stopwatch(work)

    def hand_codec(rep: int) -> float:
        def work() -> None:
            for _ in range(count):
                last["hand codec"] = _hand_decode(_hand_encode(event))

        return stopwatch(work)

    def encodes(rep: int) -> float:
        def work() -> None:
            for _ in range(count):
                last["encode"] = encode(event)

        return stopwatch(work)

    def decodes(rep: int) -> float:
        def work() -> None:
            for _ in range(count):
                last["decode"] = decode(type_name, version, data)

        return stopwatch(work)

    figures = interleave_sides(
        repetitions,
        count,
        {
            "eventstore": round_trips,
            "ceiling": hand_codec,
            "encode": encodes,
            "decode": decodes,
        },
    )
    wrong = [
        side for side in ("round trip", "hand codec", "decode") if last[side] != event
    ]
    if last["encode"] != payload:
        wrong.append("encode")
    if _hand_encode(event) != payload.data:
        wrong.append("the hand codec's encoding")
    ours, ceiling = figures["eventstore"], figures["ceiling"]
    return {
        "name": "serializer_roundtrip_20_fields",
        "unit": "round trips/s",
        "median": ours.median,
        "min": ours.min,
        "max": ours.max,
        "samples": ours.samples,
        "encode_median": figures["encode"].median,
        "decode_median": figures["decode"].median,
        "ceiling_median": ceiling.median,
        "ceiling_min": ceiling.min,
        "ceiling_max": ceiling.max,
        "ceiling_samples": ceiling.samples,
        # The ratio of the medians, as every other workload's.
        "share_of_ceiling": ours.median / ceiling.median,
        "repetitions": repetitions,
        "iterations": count,
        # None, or which sides did not give back the event (or its payload).
        "check_error": f"wrong result: {', '.join(wrong)}" if wrong else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    result = run(parser.parse_args().quick)
    if result["check_error"] is not None:
        raise SystemExit(result["check_error"])
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
