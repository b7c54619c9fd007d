from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore.serialization import Registry
from eventstore.testing.serialization import (
    assert_roundtrip,
    check_registry,
    load_examples,
)
from eventstore.testing.strategies import registry_strategies, strategy_for

from .models import Author, Document, build_registry

FIXTURES = Path(__file__).parent / "fixtures"


def test_check_registry_passes_for_the_document_registry() -> None:
    check_registry(build_registry(), examples=FIXTURES, max_examples=20)


def test_check_registry_accepts_examples_as_a_mapping() -> None:
    check_registry(build_registry(), examples=load_examples(FIXTURES), max_examples=5)


def test_check_registry_requires_a_sample_of_every_old_version() -> None:
    with pytest.raises(
        AssertionError,
        match=r"no sample payload for old schema versions 'doc.created' v1, 'document' v1, 'document' v2",
    ):
        check_registry(build_registry(), max_examples=5)
    check_registry(build_registry(), max_examples=5, require_examples=False)


def test_check_registry_names_samples_keyed_by_a_version_nothing_reads() -> None:
    samples = load_examples(FIXTURES)
    typo = {**samples, ("document", 7): samples[("document", 1)]}
    with pytest.raises(AssertionError, match=r"'document' v7 test nothing"):
        check_registry(build_registry(), examples=typo, max_examples=5)
    registry = Registry()
    registry.add(Author, "author", version=2)
    registry.upcaster("author", from_version=1)(lambda data: {**data, "email": None})
    # A current version's samples are decoded and round-tripped too.
    with pytest.raises(Exception, match="Author"):
        check_registry(
            registry,
            examples={("author", 1): [{"name": "a"}], ("author", 2): [{"nam": "a"}]},
            max_examples=5,
        )


def test_check_registry_fails_on_an_upcaster_that_builds_a_bad_object() -> None:
    registry = Registry()
    registry.add(Author, "author", version=2)

    @registry.upcaster("author", from_version=1)
    def wrong(data: dict[str, Any]) -> dict[str, Any]:
        return {"name": data["name"], "email": 42}

    with pytest.raises(Exception, match=r"Author\.email: 42 fits none of"):
        check_registry(
            registry, examples={("author", 1): [{"name": "a"}]}, max_examples=5
        )


@attrs.frozen
class Bounded:
    percent: int = attrs.field(
        validator=attrs.validators.and_(
            attrs.validators.ge(0), attrs.validators.le(100)
        )
    )
    at: dt.datetime = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_field_override_satisfies_a_validator() -> None:
    registry = Registry()
    registry.add(Bounded, "bounded")
    with pytest.raises(ValueError, match="'percent' must be"):
        check_registry(registry, max_examples=20)
    check_registry(
        registry,
        overrides={(Bounded, "percent"): st.integers(0, 100)},
        max_examples=20,
    )


def test_type_override_replaces_every_use_of_a_type() -> None:
    strategy = strategy_for(Document, overrides={Author: st.just(Author("fixed"))})

    @given(strategy)
    def check(document: Document) -> None:
        assert document.author == Author("fixed")
        assert document.pending == []

    check()


def test_registry_strategies_cover_every_registered_type() -> None:
    registry = build_registry()
    assert set(registry_strategies(registry)) == {"document", "document.created"}


def test_assert_roundtrip_compares_fields_not_a_custom_eq() -> None:
    @attrs.frozen
    class Lossy:
        value: float

        def __eq__(self, other: object) -> bool:  # a class whose == hides -0.0
            return isinstance(other, Lossy)

        def __hash__(self) -> int:
            return 0

    registry = Registry()
    registry.add(Lossy, "lossy")
    decoded = assert_roundtrip(registry, Lossy(-0.0))
    assert str(decoded.value) == "-0.0"


def test_assert_roundtrip_catches_a_lossy_upcast_free_round_trip() -> None:
    registry = Registry()
    registry.add(Author, "author")
    original = registry.decode

    def lossy_decode(
        type_name: str, schema_version: int, data: Mapping[str, Any]
    ) -> Any:
        return attrs.evolve(original(type_name, schema_version, data), email=None)

    registry.decode = lossy_decode  # type: ignore[method-assign] # simulate a lossy codec
    with pytest.raises(
        AssertionError,
        match=r"'author' v1 does not round-trip: Author\.email: str 'e' came back as NoneType None",
    ):
        assert_roundtrip(registry, Author("a", "e"))


class Access(enum.Flag):
    READ = enum.auto()
    WRITE = enum.auto()
    ADMIN = enum.auto()


@attrs.frozen
class AccessGranted:
    access: Access


def test_a_flag_fields_strategy_draws_combinations_and_the_registry_round_trips_them() -> (
    None
):
    registry = Registry()
    registry.add(AccessGranted, "access.granted")
    drawn: set[Access] = set()

    @given(strategy_for(AccessGranted))
    def check(value: AccessGranted) -> None:
        drawn.add(value.access)
        assert_roundtrip(registry, value)

    check()
    assert any(len(list(access)) > 1 for access in drawn)  # combinations drawn
    check_registry(registry, max_examples=30)
