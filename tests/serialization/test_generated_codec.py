"""
The generated (un)structure functions: what they write out in place.

A payload holding exactly a class's fields takes the generated fast path,
with nested classes built in their parent's function; anything else takes
the cattrs function behind it. Both must give the same objects and the same
errors, whatever the class's shape.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

import attrs
import pytest

from eventstore.errors import SerializationError
from eventstore.serialization import TRANSIENT, Registry


class Level(enum.Enum):
    ONE = 1
    TWO = 2


@attrs.frozen
class Inner:
    amount: Decimal
    note: str = "none"


@attrs.frozen
class Shaped:
    """Positional, keyword-only, private (aliased) and transient fields."""

    first: int
    _hidden: str
    skipped: list[str] = attrs.field(factory=list, metadata={TRANSIENT: True})
    after_skip: float = 0.5
    inner: Inner = Inner(Decimal("1"))
    level: Level = attrs.field(default=Level.ONE, kw_only=True)
    maybe_ratio: float | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class D4:
    at: dt.datetime
    day: dt.date


@attrs.frozen
class D3:
    d4: D4
    id: uuid.UUID


@attrs.frozen
class D2:
    d3: D3


@attrs.frozen
class D1:
    d2: D2
    many: tuple[D3, ...]


@pytest.fixture
def registry() -> Registry:
    registry = Registry()
    registry.add(Shaped, "shaped")
    registry.add(D1, "deep")
    return registry


def shaped() -> Shaped:
    return Shaped(
        7,
        "secret",
        ["not stored"],
        0.25,
        Inner(Decimal("2.50"), "paid"),
        level=Level.TWO,
        maybe_ratio=1.5,
    )


def deep() -> D1:
    d3 = D3(
        D4(dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC), dt.date(2026, 1, 2)),
        uuid.UUID("5b0c8f52-8d2a-4f7e-9a55-2f1f6c3b9e01"),
    )
    return D1(D2(d3), (d3, d3))


def test_every_kind_of_field_round_trips_through_the_fast_path(
    registry: Registry,
) -> None:
    payload = registry.encode(shaped())
    assert payload.data == {
        "first": 7,
        "_hidden": "secret",
        "after_skip": 0.25,
        "inner": {"amount": "2.50", "note": "paid"},
        "level": 2,
        "maybe_ratio": 1.5,
    }
    decoded = registry.decode("shaped", 1, payload.data)
    assert decoded == attrs.evolve(shaped(), skipped=[])
    assert decoded.skipped == []


def test_fields_left_out_take_their_defaults_at_any_depth(registry: Registry) -> None:
    data = registry.encode(shaped()).data
    del data["after_skip"], data["level"]
    del data["inner"]["note"]
    decoded = registry.decode("shaped", 1, data)
    assert decoded == Shaped(
        7, "secret", [], 0.5, Inner(Decimal("2.50")), maybe_ratio=1.5
    )


def test_integers_become_floats_and_int_enums_refuse_booleans(
    registry: Registry,
) -> None:
    data = registry.encode(shaped()).data
    data["after_skip"], data["maybe_ratio"] = 3, 4
    decoded = registry.decode("shaped", 1, data)
    assert (decoded.after_skip, decoded.maybe_ratio) == (3.0, 4.0)
    assert type(decoded.after_skip) is float
    assert type(decoded.maybe_ratio) is float
    data["level"] = True  # equal to 1, yet not Level.ONE's value
    with pytest.raises(
        SerializationError, match=r"Shaped\.level: True is not a value of Level"
    ):
        registry.decode("shaped", 1, data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"note": 5}, r"Shaped\.inner\.note: expected a JSON string, got int 5"),
        ({"amount": "NaN"}, r"Shaped\.inner\.amount: expected a decimal number"),
        ({"amount": "lots"}, r"Shaped\.inner\.amount: expected a decimal number"),
        ({"extra": 1}, r"Shaped\.inner: unexpected fields 'extra'"),
    ],
)
def test_a_bad_nested_value_is_named_as_before(
    registry: Registry, change: dict[str, object], message: str
) -> None:
    data = registry.encode(shaped()).data
    data["inner"].update(change)
    with pytest.raises(SerializationError, match=message):
        registry.decode("shaped", 1, data)


def test_classes_nested_past_the_inlined_depth_round_trip(registry: Registry) -> None:
    payload = registry.encode(deep())
    assert registry.decode("deep", 1, payload.data) == deep()
    assert payload.data["d2"]["d3"]["d4"] == {
        "at": "2026-01-02T03:04:00+00:00",
        "day": "2026-01-02",
    }


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("d2", "d3", "d4", "at"),
            "2026-01-02T03:04:00",
            r"D1\.d2\.d3\.d4\.at: expected",
        ),
        (("d2", "d3", "d4", "day"), "tomorrow", r"D1\.d2\.d3\.d4\.day: expected"),
        (("d2", "d3", "id"), "not-a-uuid", r"D1\.d2\.d3\.id: expected a UUID"),
        (("d2", "d3"), None, r"D1\.d2\.d3: expected a JSON object, got None"),
    ],
)
def test_a_bad_value_deep_down_is_named_with_its_whole_path(
    registry: Registry, path: tuple[str, ...], value: object, message: str
) -> None:
    data = registry.encode(deep()).data
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(SerializationError, match=message):
        registry.decode("deep", 1, data)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"inner": "2.50"}, r"Shaped\.inner: expected Inner, got str"),
        ({"inner": Inner(Decimal("NaN"))}, r"Shaped\.inner\.amount: Decimal NaN"),
        ({"after_skip": float("inf")}, r"Shaped\.after_skip: inf cannot be stored"),
        (
            {"maybe_ratio": 1},
            r"Shaped\.maybe_ratio: int 1 is not one of the union's types",
        ),
    ],
)
def test_a_bad_value_is_refused_at_encode_with_its_path(
    registry: Registry, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(SerializationError, match=message):
        registry.encode(attrs.evolve(shaped(), **changes))


@pytest.mark.parametrize(
    "text",
    [
        "0x345678-1234-1234-1234-123456789abc",  # int(_, 16) would take these
        "1_345678-1234-1234-1234-123456789abc",
        "+2345678-1234-1234-1234-123456789abc",
        " 2345678-1234-1234-1234-123456789abc",
        "12 45678-1234-1234-1234-123456789abc",  # bytes.fromhex skips spaces
        "12345678-1234-1234-1234-123456789abg",
        "12345678-1234-1234-1234-123456789abé",
        "123456781234-1234-1234-123456789abc-",
    ],
)
def test_only_canonical_hex_uuids_are_read(registry: Registry, text: str) -> None:
    data = registry.encode(deep()).data
    data["d2"]["d3"]["id"] = text
    with pytest.raises(SerializationError, match=r"D1\.d2\.d3\.id: expected a UUID"):
        registry.decode("deep", 1, data)


def test_uuids_read_in_any_case_equal_the_stdlib_ones(registry: Registry) -> None:
    for _ in range(200):
        ident = uuid.uuid4()
        for text in (str(ident), str(ident).upper()):
            data = registry.encode(deep()).data
            data["d2"]["d3"]["id"] = text
            read = registry.decode("deep", 1, data).d2.d3.id
            assert (type(read), read, hash(read)) == (uuid.UUID, ident, hash(ident))
            assert read.is_safe is uuid.SafeUUID.unknown


# Classes whose __init__ does more than set slots: the decoder must call it.


@attrs.frozen
class Validated:
    count: int = attrs.field(validator=attrs.validators.ge(0))


def _upper(text: str) -> str:
    return text.upper()


@attrs.frozen
class Converted:
    code: str = attrs.field(converter=_upper)


@attrs.frozen
class PostInit:
    low: int
    high: int

    def __attrs_post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError("low above high")


@attrs.frozen(cache_hash=True)
class CachedHash:
    name: str


@attrs.define(slots=False)
class DictBacked:
    name: str


@attrs.frozen
class Base:
    a: int


@attrs.frozen
class Derived(Base):
    b: str


@attrs.frozen
class Holder:
    validated: Validated
    converted: Converted
    post_init: PostInit
    cached: CachedHash
    dict_backed: DictBacked
    derived: Derived


def holder() -> Holder:
    return Holder(
        Validated(3),
        Converted("abc"),
        PostInit(1, 2),
        CachedHash("n"),
        DictBacked("d"),
        Derived(1, "b"),
    )


@pytest.fixture
def holders() -> Registry:
    registry = Registry()
    registry.add(Holder, "holder")
    registry.add(Derived, "derived")
    return registry


def test_objects_built_without_init_equal_constructed_ones(holders: Registry) -> None:
    payload = holders.encode(holder())
    decoded = holders.decode("holder", 1, payload.data)
    assert decoded == holder()
    assert hash(decoded.derived) == hash(Derived(1, "b"))
    assert hash(decoded.cached) == hash(CachedHash("n"))  # its cache slot set
    assert decoded.derived == Derived(1, "b")
    assert holders.decode("derived", 1, {"a": 5, "b": "x"}) == Derived(5, "x")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(decoded.derived, "b", "changed")  # noqa: B010 - the frozen class's own __setattr__


def test_converters_run_at_decode(holders: Registry) -> None:
    data = holders.encode(holder()).data
    data["converted"]["code"] = "xyz"
    assert holders.decode("holder", 1, data).converted == Converted("XYZ")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("validated", {"count": -1}, r"must be >= 0"),
        ("post_init", {"low": 3, "high": 2}, r"low above high"),
    ],
)
def test_validators_and_post_init_hooks_run_at_decode(
    holders: Registry, key: str, value: dict[str, int], message: str
) -> None:
    data = holders.encode(holder()).data
    data[key] = value
    with pytest.raises(SerializationError, match=message):
        holders.decode("holder", 1, data)


# A keyword-only field in a base class comes before the subclass's
# positional ones: __init__ takes it by keyword, after them.


@attrs.frozen
class Occurred:
    occurred_at: dt.datetime = attrs.field(kw_only=True)
    source: str = attrs.field(default="web", kw_only=True)


@attrs.frozen
class Opened(Occurred):
    name: str
    limit: int = 10


@attrs.frozen
class OpenedChecked(Occurred):
    name: str = attrs.field(validator=attrs.validators.min_len(1))
    limit: int = 10


_AT = dt.datetime(2026, 12, 3, 9, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize("cls", [Opened, OpenedChecked])
def test_a_keyword_only_field_before_positional_ones_round_trips(
    cls: type[Opened] | type[OpenedChecked],
) -> None:
    registry = Registry()
    registry.add(cls, "opened")
    event = cls("n", 3, occurred_at=_AT, source="api")
    payload = registry.encode(event)
    assert registry.decode("opened", 1, payload.data) == event
    # Defaults left out: the function behind the fast path builds it.
    partial = {"name": "n", "occurred_at": payload.data["occurred_at"]}
    assert registry.decode("opened", 1, partial) == cls("n", occurred_at=_AT)
    with pytest.raises(SerializationError, match="limit"):
        registry.decode("opened", 1, {**partial, "limit": "ten"})
    if cls is OpenedChecked:  # the validator's own words, on both paths
        for data in ({**payload.data, "name": ""}, {**partial, "name": ""}):
            with pytest.raises(SerializationError, match="'name' must be >= 1"):
                registry.decode("opened", 1, data)
