from __future__ import annotations

import enum
import re
import typing  # noqa: F401 - used by the evaluated annotations
import uuid  # noqa: F401 - used by the evaluated annotations
from typing import Any

import attrs
import pytest

from eventstore.errors import RegistrationError, SerializationError, UnknownTypeError
from eventstore.serialization import TRANSIENT, Registry

from .models import (  # noqa: F401 - Money and Severity: used by the evaluated annotations
    Author,
    Document,
    DocumentCreated,
    Money,
    Severity,
    build_registry,
)


@attrs.frozen
class Ping:
    n: int


def test_register_as_decorator_returns_the_class_and_records_name_and_version() -> None:
    registry = Registry()

    @registry.register("ping", version=2)
    @attrs.frozen
    class Local:
        n: int

    @registry.upcaster("ping", from_version=1)
    def _v1(data: dict[str, Any]) -> dict[str, Any]:
        return data

    assert registry.type_name_of(Local) == "ping"
    assert registry.type_name_of(Local(1)) == "ping"
    assert registry.schema_version_of("ping") == 2


def test_register_called_explicitly_and_add_are_equivalent() -> None:
    registry = Registry()
    registry.register("ping")(Ping)
    other = Registry()
    other.add(Ping, "ping")
    assert registry.describe() == other.describe()


def test_duplicate_type_name_is_refused() -> None:
    registry = Registry()
    registry.add(Ping, "ping")
    with pytest.raises(
        RegistrationError, match="type name 'ping' is already registered for Ping"
    ):
        registry.add(Author, "ping")


def test_duplicate_class_is_refused() -> None:
    registry = Registry()
    registry.add(Ping, "ping")
    with pytest.raises(RegistrationError, match="Ping is already registered as 'ping'"):
        registry.add(Ping, "pong")


def test_non_attrs_class_is_refused() -> None:
    class Plain:
        pass

    with pytest.raises(RegistrationError, match="Plain is not an attrs class"):
        Registry().add(Plain, "plain")


def test_attrs_written_above_register_is_told_to_go_below_it() -> None:
    registry = Registry()
    with pytest.raises(RegistrationError, match="written below @register"):

        @attrs.frozen
        @registry.register("x.happened")
        class Happened:
            n: int

    assert registry.types() == {}  # nothing half-registered


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        ("set[int]", "unsupported type set[int]"),
        ("object", "unsupported type object"),
        ("list", "bare list has no item type"),
        ("dict[int, str]", "dict keys must be str"),
        (
            "str | uuid.UUID",
            "union members str and UUID are both stored as JSON string",
        ),
        (
            "int | Severity",
            "union members int and Severity are both stored as JSON integer",
        ),
        (
            # PostgreSQL's jsonb returns a float of 1e16 or more as an integer.
            "float | Severity",
            "union members float and Severity cannot be told apart once stored",
        ),
        (
            "float | None | Severity",
            "union members float and Severity cannot be told apart once stored",
        ),
        (
            "Author | Money",
            "union members Author and Money are both stored as JSON object",
        ),
        ("Mixed", "Mixed must have all-str or all-int values"),
        ("typing.Any", "unsupported type Any"),
    ],
)
def test_unsupported_field_types_are_refused_at_registration(
    annotation: str, message: str
) -> None:
    class Mixed(enum.Enum):
        A = 1
        B = "b"

    cls = attrs.make_class(
        "Bad",
        {"field": attrs.field(type=eval(annotation))},  # noqa: S307 - test-only, literal input
    )
    with pytest.raises(RegistrationError, match=re.escape(message)) as info:
        Registry().add(cls, "bad")
    assert "Bad.field" in str(info.value)


@attrs.frozen
class Inner:
    values: set[str]


@attrs.frozen
class Outer:
    inner: Inner


def test_nested_unsupported_type_is_refused_at_registration() -> None:
    with pytest.raises(
        RegistrationError, match=r"Inner\.values has unsupported type set\[str\]"
    ):
        Registry().add(Outer, "outer")


def test_transient_field_without_default_is_refused() -> None:
    @attrs.define
    class Agg:
        pending: list[int] = attrs.field(metadata={TRANSIENT: True})

    with pytest.raises(
        RegistrationError, match=r"transient field .*Agg\.pending has no default"
    ):
        Registry().add(Agg, "agg")


def test_unresolvable_string_annotation_is_refused() -> None:
    @attrs.frozen
    class Forward:
        other: NoSuchType  # type: ignore[name-defined]  # noqa: F821 - the point of the test

    with pytest.raises(
        RegistrationError, match=r"cannot resolve the field annotations of .*Forward"
    ):
        Registry().add(Forward, "forward")


@pytest.mark.parametrize("version", [0, -1, True, "1", 1.0])
def test_bad_schema_versions_are_refused(version: Any) -> None:
    with pytest.raises(
        RegistrationError, match=r"schema version of 'ping' must be (an int|at least 1)"
    ):
        Registry().add(Ping, "ping", version=version)


@pytest.mark.parametrize("name", ["", "   ", None, 3])
def test_bad_type_names_are_refused(name: Any) -> None:
    with pytest.raises(
        RegistrationError,
        match=r"a type name must (be a str|not be empty|not be blank)",
    ):
        Registry().add(Ping, name)


def test_gap_in_upcaster_chain_is_refused_on_validate() -> None:
    registry = Registry()
    registry.add(Ping, "ping", version=3)

    @registry.upcaster("ping", from_version=2)
    def _v2(data: dict[str, Any]) -> dict[str, Any]:
        return data

    with pytest.raises(
        RegistrationError,
        match="'ping' is at version 3 but has no upcaster from version 1",
    ):
        registry.validate()


def test_gap_is_found_by_the_first_decode_even_of_a_current_payload() -> None:
    registry = Registry()
    registry.add(Ping, "ping", version=2)
    with pytest.raises(RegistrationError, match="no upcaster from version 1"):
        registry.decode("ping", 2, {"n": 1})


def test_gap_is_found_by_the_first_encode() -> None:
    registry = Registry()
    registry.add(Ping, "ping", version=2)
    with pytest.raises(RegistrationError, match="no upcaster from version 1"):
        registry.encode(Ping(1))


def test_duplicate_upcaster_is_refused() -> None:
    registry = Registry()

    @registry.upcaster("ping", from_version=1)
    def _first(data: dict[str, Any]) -> dict[str, Any]:
        return data

    with pytest.raises(
        RegistrationError, match="'ping' already has an upcaster from version 1"
    ):

        @registry.upcaster("ping", from_version=1)
        def _second(data: dict[str, Any]) -> dict[str, Any]:
            return data


def test_upcaster_from_the_current_version_is_refused() -> None:
    registry = Registry()
    registry.add(Ping, "ping", version=1)

    @registry.upcaster("ping", from_version=1)
    def _v1(data: dict[str, Any]) -> dict[str, Any]:
        return data

    with pytest.raises(
        RegistrationError,
        match="reads version 1, but 'ping' is registered at version 1",
    ):
        registry.validate()


def test_upcaster_for_an_unknown_name_is_refused() -> None:
    registry = Registry()

    @registry.upcaster("ghost", from_version=1)
    def _v1(data: dict[str, Any]) -> dict[str, Any]:
        return data

    with pytest.raises(
        RegistrationError,
        match="belongs to 'ghost', which is neither registered nor renamed",
    ):
        registry.validate()


def test_rename_to_an_unregistered_name_is_refused() -> None:
    registry = Registry()

    @registry.upcaster("old", from_version=1, rename_to="new")
    def _rename(data: dict[str, Any]) -> dict[str, Any]:
        return data

    with pytest.raises(
        RegistrationError, match="renames to 'new', which is not registered"
    ):
        registry.validate()


def test_rename_of_a_still_registered_name_is_refused() -> None:
    registry = Registry()
    registry.add(Ping, "ping", version=2)
    registry.add(Author, "author")

    @registry.upcaster("ping", from_version=1, rename_to="author")
    def _rename(data: dict[str, Any]) -> dict[str, Any]:
        return data

    with pytest.raises(
        RegistrationError, match="renames 'ping', which is still registered"
    ):
        registry.validate()


def test_rename_cycle_is_refused() -> None:
    registry = Registry()

    @registry.upcaster("a", from_version=1, rename_to="b")
    def _a(data: dict[str, Any]) -> dict[str, Any]:
        return data

    @registry.upcaster("b", from_version=1, rename_to="a")
    def _b(data: dict[str, Any]) -> dict[str, Any]:
        return data

    with pytest.raises(RegistrationError, match="cycle"):
        registry.validate()


def test_to_version_without_rename_must_be_the_next_version() -> None:
    with pytest.raises(RegistrationError, match="to_version is only for renames"):
        Registry().upcaster("ping", from_version=1, to_version=3)


def test_registering_after_use_validates_again() -> None:
    registry = Registry()
    registry.add(Ping, "ping")
    registry.encode(Ping(1))
    registry.add(Author, "author", version=2)
    with pytest.raises(RegistrationError, match="'author' is at version 2"):
        registry.encode(Ping(1))


def test_schema_version_of_unknown_name_raises_unknown_type() -> None:
    with pytest.raises(UnknownTypeError, match="unknown type name 'nope'"):
        Registry().schema_version_of("nope")


def test_type_name_of_unregistered_class_names_it() -> None:
    with pytest.raises(
        SerializationError, match=r"test_registry\.Ping is not registered"
    ):
        Registry().type_name_of(Ping)


def test_describe_lists_fields_nested_types_enums_and_transients() -> None:
    described = build_registry().describe()
    document = described["types"]["document"]
    assert document["schema_version"] == 3
    assert document["fields"][0] == {
        "name": "id",
        "type": "UUID",
        "default": False,
        "transient": False,
    }
    assert {f["name"]: f["type"] for f in document["fields"]} == {
        "id": "UUID",
        "name": "str",
        "author": "Author",
        "status": "Status",
        "findings": "tuple[Finding, ...]",
        "budget": "Money | None",
        "reviewed_at": "datetime | None",
        "pending": "transient",
    }
    assert document["fields"][-1]["transient"] is True
    assert set(document["nested"]) == {"Author", "Finding", "Money"}
    assert document["enums"] == {
        "Severity": [1, 2],
        "Status": ["draft", "in_review", "approved"],
    }
    assert described["upcasters"] == {"doc.created": [1], "document": [1, 2]}
    assert described["renames"] == {
        "doc.created": {"from_version": 1, "to": "document.created", "to_version": 1}
    }
    assert Document in build_registry().types().values()
    assert DocumentCreated in build_registry().types().values()
