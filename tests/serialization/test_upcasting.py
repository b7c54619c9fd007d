from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from eventstore.errors import SerializationError
from eventstore.serialization import Registry

from .models import (
    Author,
    Document,
    DocumentCreated,
    Finding,
    Money,
    Severity,
    Status,
    build_registry,
)

FIXTURES = Path(__file__).parent / "fixtures"
DOC_ID = uuid.UUID("5b0c8f52-8d2a-4f7e-9a55-2f1f6c3b9e01")


def load(name: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return record


def test_v1_fixture_loads_as_the_v3_document() -> None:
    record = load("document_v1.json")
    document = build_registry().decode(
        record["type"], record["schema_version"], record["data"]
    )
    assert document == Document(
        id=DOC_ID,
        name="Q3 data retention policy",
        author=Author("Ada Lovelace", None),
        status=Status.DRAFT,
    )


def test_v2_fixture_loads_as_the_v3_document() -> None:
    record = load("document_v2.json")
    document = build_registry().decode(
        record["type"], record["schema_version"], record["data"]
    )
    assert document == Document(
        id=DOC_ID,
        name="Q3 data retention policy",
        author=Author("Ada Lovelace", "ada@example.com"),
        status=Status.IN_REVIEW,
        findings=(Finding("RET-7", Severity.HIGH, "keeps logs 10 years"),),
        budget=Money(Decimal("1999.90"), "EUR"),
        reviewed_at=dt.datetime(2026, 11, 2, 8, 30, tzinfo=dt.UTC),
    )
    assert document.reviewed_at.utcoffset() == dt.timedelta(hours=1)


def test_upcasting_never_changes_the_stored_payload() -> None:
    record = load("document_v2.json")
    before = copy.deepcopy(record["data"])
    build_registry().decode("document", 2, record["data"])
    assert record["data"] == before


def test_renamed_event_type_reaches_the_new_class() -> None:
    record = load("doc_created_v1.json")
    event = build_registry().decode(
        record["type"], record["schema_version"], record["data"]
    )
    assert event == DocumentCreated(
        DOC_ID, "Q3 data retention policy", dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC)
    )


def test_rename_into_an_older_version_then_upcasts_the_rest_of_the_way() -> None:
    @attrs.frozen
    class Thing:
        label: str
        size: int

    registry = Registry()
    registry.add(Thing, "thing", version=2)

    @registry.upcaster("widget", from_version=1)
    def widget_v1(data: dict[str, Any]) -> dict[str, Any]:
        return {"label": data["name"]}

    @registry.upcaster("widget", from_version=2, rename_to="thing", to_version=1)
    def widget_is_thing(data: dict[str, Any]) -> dict[str, Any]:
        return data

    @registry.upcaster("thing", from_version=1)
    def thing_v1(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "size": 0}

    assert registry.decode("widget", 1, {"name": "w"}) == Thing("w", 0)
    assert registry.decode("widget", 2, {"label": "w"}) == Thing("w", 0)
    assert sorted(registry.old_versions()) == [
        ("thing", 1),
        ("widget", 1),
        ("widget", 2),
    ]


def test_failing_upcaster_is_named_in_the_error() -> None:
    registry = Registry()
    registry.add(Author, "author", version=2)

    @registry.upcaster("author", from_version=1)
    def broken(data: dict[str, Any]) -> dict[str, Any]:
        return {"name": data["missing"]}

    with pytest.raises(
        SerializationError,
        match=r"upcaster 'author' v1 -> 'author' v2 \(.*broken\) failed on a 'author' v1 payload: KeyError\('missing'\)",
    ):
        registry.decode("author", 1, {})


def test_upcaster_returning_a_non_dict_is_an_error() -> None:
    registry = Registry()
    registry.add(Author, "author", version=2)

    # The bug under test: typed as an upcaster, it forgets its return.
    @registry.upcaster("author", from_version=1)
    def returns_none(data: dict[str, Any]) -> dict[str, Any]:  # type: ignore[return]
        data["name"] = "x"

    with pytest.raises(
        SerializationError, match=r"returns_none\) returned NoneType, not a dict"
    ):
        registry.decode("author", 1, {})


def test_upcaster_that_forgets_a_removed_field_is_caught() -> None:
    registry = Registry()
    registry.add(Author, "author", version=2)

    @registry.upcaster("author", from_version=1)
    def keeps_nickname(data: dict[str, Any]) -> dict[str, Any]:
        return data

    with pytest.raises(
        SerializationError,
        match=r"cannot decode 'author' v1 \(upcast to 'author' v2\): Author: unexpected fields 'nickname'",
    ):
        registry.decode("author", 1, {"name": "a", "nickname": "n"})
