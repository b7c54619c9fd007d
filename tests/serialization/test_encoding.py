from __future__ import annotations

import datetime as dt
import enum
import json
import math
import uuid
from decimal import Decimal
from typing import Any

import attrs
import pytest

from eventstore.errors import (
    FutureSchemaVersionError,
    RegistrationError,
    SerializationError,
    UnknownTypeError,
)
from eventstore.events import LogPosition, RecordedEvent
from eventstore.serialization import TRANSIENT, Payload, Registry
from eventstore.testing.serialization import assert_roundtrip

from .models import Author, Document, Finding, Money, Severity, Status, build_registry

UTC = dt.UTC


@attrs.frozen
class Scalars:
    text: str
    number: int
    ratio: float
    flag: bool
    nothing: None
    amount: Decimal
    ident: uuid.UUID
    at: dt.datetime
    day: dt.date
    status: Status
    severity: Severity


@attrs.frozen
class Collections:
    items: list[int]
    pair: tuple[str, int]
    many: tuple[Author, ...]
    tags: frozenset[str]
    lookup: dict[str, list[Decimal]]
    maybe: Money | None


@attrs.frozen
class Unions:
    int_or_bool: int | bool
    int_or_float: int | float
    text_or_list: str | list[str] | None = None


@attrs.define
class WithPrivateAndInitFalse:
    _secret: str
    computed: int = attrs.field(init=False, default=0)
    pending: list[str] = attrs.field(factory=list, metadata={TRANSIENT: True})


@attrs.frozen
class FrozenInitFalse:
    a: int
    b: str = attrs.field(init=False, default="unset")


@pytest.fixture
def registry() -> Registry:
    registry = build_registry()
    registry.add(Scalars, "scalars")
    registry.add(Collections, "collections")
    registry.add(Unions, "unions")
    registry.add(WithPrivateAndInitFalse, "private")
    registry.add(FrozenInitFalse, "frozen-init-false")
    return registry


def scalars(**changes: Any) -> Scalars:
    value = Scalars(
        text="héllo ✓",
        number=-(2**70),
        ratio=-0.0,
        flag=False,
        nothing=None,
        amount=Decimal("-1.2300E+5"),
        ident=uuid.UUID("5b0c8f52-8d2a-4f7e-9a55-2f1f6c3b9e01"),
        at=dt.datetime(
            2026,
            3,
            29,
            1,
            30,
            15,
            123456,
            tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=45)),
        ),
        day=dt.date(1999, 12, 31),
        status=Status.APPROVED,
        severity=Severity.HIGH,
    )
    return attrs.evolve(value, **changes)


def test_scalars_round_trip_exactly(registry: Registry) -> None:
    decoded = assert_roundtrip(registry, scalars())
    assert math.copysign(1.0, decoded.ratio) == -1.0
    assert str(decoded.amount) == "-1.2300E+5"
    assert decoded.at.utcoffset() == dt.timedelta(hours=5, minutes=45)


def test_payload_is_plain_json_with_strings_for_decimal_uuid_and_dates(
    registry: Registry,
) -> None:
    payload = registry.encode(scalars())
    assert payload == Payload("scalars", 1, payload.data)
    assert payload.data == {
        "text": "héllo ✓",
        "number": -(2**70),
        "ratio": -0.0,
        "flag": False,
        "nothing": None,
        "amount": "-1.2300E+5",
        "ident": "5b0c8f52-8d2a-4f7e-9a55-2f1f6c3b9e01",
        "at": "2026-03-29T01:30:15.123456+05:45",
        "day": "1999-12-31",
        "status": "approved",
        "severity": 2,
    }
    assert json.loads(json.dumps(payload.data, allow_nan=False)) == payload.data


def test_offset_with_seconds_survives(registry: Registry) -> None:
    odd = dt.timezone(dt.timedelta(hours=-3, seconds=-7))
    assert_roundtrip(registry, scalars(at=dt.datetime(1, 1, 1, tzinfo=odd)))


def test_collections_round_trip_as_json_arrays_and_objects(registry: Registry) -> None:
    value = Collections(
        items=[1, 2, 3],
        pair=("a", 1),
        many=(Author("Ada"), Author("Grace", "g@example.com")),
        tags=frozenset({"x", "y"}),
        lookup={"prices": [Decimal("0.10"), Decimal("7")], "none": []},
        maybe=Money(Decimal("5.00"), "EUR"),
    )
    assert_roundtrip(registry, value)
    data = registry.encode(value).data
    assert data["pair"] == ["a", 1]
    assert data["many"] == [
        {"name": "Ada", "email": None},
        {"name": "Grace", "email": "g@example.com"},
    ]
    assert sorted(data["tags"]) == ["x", "y"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("int_or_bool", True),
        ("int_or_bool", 1),
        ("int_or_float", 1),
        ("int_or_float", 1.0),
    ],
)
def test_unions_keep_bool_int_and_float_apart(
    registry: Registry, field: str, value: Any
) -> None:
    obj = attrs.evolve(Unions(0, 0), **{field: value})
    decoded = assert_roundtrip(registry, obj)
    assert type(getattr(decoded, field)) is type(value)


def test_optional_union_of_str_and_list(registry: Registry) -> None:
    for value in ("a", ["a", "b"], None):
        assert_roundtrip(registry, Unions(0, 0, value))


def test_private_and_init_false_fields_round_trip(registry: Registry) -> None:
    obj = WithPrivateAndInitFalse("s3cret")
    obj.computed = 42
    obj.pending.append("unsaved")
    payload = registry.encode(obj)
    assert payload.data == {"_secret": "s3cret", "computed": 42}
    decoded = registry.decode(payload.type, payload.schema_version, payload.data)
    assert decoded._secret == "s3cret"  # noqa: S105 - not a password
    assert decoded.computed == 42
    assert decoded.pending == []  # transient: takes its default


def test_init_false_field_of_a_frozen_class_round_trips(registry: Registry) -> None:
    obj = FrozenInitFalse(1)
    object.__setattr__(obj, "b", "set later")
    decoded = assert_roundtrip(registry, obj)
    assert decoded.b == "set later"


def test_transient_field_is_left_out_and_takes_its_default(registry: Registry) -> None:
    doc = Document(uuid.uuid4(), "n", Author("a"), Status.DRAFT, pending=["event"])
    payload = registry.encode(doc)
    assert "pending" not in payload.data
    assert registry.decode("document", 3, payload.data).pending == []


def test_store_record_helpers_round_trip(registry: Registry) -> None:
    created = registry.types()["document.created"](
        uuid.uuid4(), "n", dt.datetime.now(UTC)
    )
    event_id = uuid.uuid4()
    new = registry.to_new_event(
        created, metadata={"correlation_id": "c"}, event_id=event_id
    )
    assert (new.type, new.schema_version, new.event_id) == (
        "document.created",
        1,
        event_id,
    )
    assert new.metadata == {"correlation_id": "c"}
    assert registry.to_new_event(created).metadata == {}
    recorded = RecordedEvent(
        stream_id="document-1",
        version=1,
        position=LogPosition(1, 1),
        type=new.type,
        data=new.data,
        metadata=new.metadata,
        event_id=new.event_id,
        schema_version=new.schema_version,
        recorded_at=dt.datetime.now(UTC),
    )
    assert registry.from_recorded(recorded) == created
    doc = Document(
        uuid.uuid4(), "n", Author("a"), Status.DRAFT, (Finding("F", Severity.LOW),)
    )
    snapshot = registry.to_snapshot("document-1", 7, doc)
    assert (
        snapshot.stream_id,
        snapshot.version,
        snapshot.type,
        snapshot.schema_version,
    ) == (
        "document-1",
        7,
        "document",
        3,
    )
    assert registry.from_snapshot(snapshot) == doc


def test_missing_field_takes_its_attrs_default(registry: Registry) -> None:
    data = registry.encode(Unions(1, 2)).data
    del data["text_or_list"]
    assert registry.decode("unions", 1, data) == Unions(1, 2)


# -- errors ------------------------------------------------------------------


def test_unregistered_class_at_encode_names_it(registry: Registry) -> None:
    with pytest.raises(
        SerializationError, match=r"models\.Author is not registered: register it"
    ):
        registry.encode(Author("a"))


def test_subclass_of_a_registered_class_is_not_encoded(registry: Registry) -> None:
    @attrs.frozen
    class MoreScalars(Scalars):
        extra: int = 0

    with pytest.raises(SerializationError, match="MoreScalars is not registered"):
        registry.encode(MoreScalars(**attrs.asdict(scalars(), recurse=False)))


def test_nested_subclass_is_refused_because_its_fields_would_be_lost(
    registry: Registry,
) -> None:
    @attrs.frozen
    class FancyAuthor(Author):
        title: str = "Dr"

    doc = Document(uuid.uuid4(), "n", FancyAuthor("a"), Status.DRAFT)
    with pytest.raises(
        SerializationError,
        match=r"Document\.author: expected Author, got .*FancyAuthor \(subclasses are not encoded",
    ):
        registry.encode(doc)


def test_naive_datetime_is_refused_at_encode(registry: Registry) -> None:
    with pytest.raises(
        SerializationError,
        match=r"cannot encode 'scalars' v1: Scalars\.at: naive datetime 2026-01-01T00:00:00 cannot be stored",
    ):
        registry.encode(scalars(at=dt.datetime(2026, 1, 1)))


@pytest.mark.parametrize("microseconds", [1, 999_999])
def test_a_utc_offset_with_a_fraction_of_a_second_is_refused_at_encode(
    registry: Registry, microseconds: int
) -> None:
    # Read back, "+00:00:00.000001" is UTC on Python 3.11: the instant moves.
    zone = dt.timezone(dt.timedelta(microseconds=microseconds))
    with pytest.raises(
        SerializationError,
        match=r"Scalars\.at: datetime .* has a UTC offset with a fraction of a second",
    ):
        registry.encode(scalars(at=dt.datetime(2026, 1, 1, 12, tzinfo=zone)))
    whole = dt.timezone(dt.timedelta(hours=5, minutes=30, seconds=15))
    value = scalars(at=dt.datetime(2026, 1, 1, 12, tzinfo=whole))
    payload = registry.encode(value)
    assert registry.decode(payload.type, payload.schema_version, payload.data) == value


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_at_encode(registry: Registry, bad: float) -> None:
    with pytest.raises(
        SerializationError,
        match=r"Scalars\.ratio: .* cannot be stored: JSON has no NaN or infinity",
    ):
        registry.encode(scalars(ratio=bad))


def test_nan_deep_in_a_collection_names_the_path(registry: Registry) -> None:
    value = Collections(
        [], ("a", 1), (), frozenset(), {"k": [Decimal("1"), Decimal("NaN")]}, None
    )
    with pytest.raises(
        SerializationError,
        match=r"Collections\.lookup\['k'\]\[1\]: Decimal NaN cannot be stored",
    ):
        registry.encode(value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"number": True}, r"Scalars\.number: expected int, got bool True"),
        ({"number": 1.0}, r"Scalars\.number: expected int, got float 1.0"),
        ({"ratio": 1}, r"Scalars\.ratio: expected float, got int 1"),
        ({"text": 5}, r"Scalars\.text: expected str, got int 5"),
        (
            {"ident": "5b0c8f52-8d2a-4f7e-9a55-2f1f6c3b9e01"},
            r"Scalars\.ident: expected UUID, got str",
        ),
        (
            {"day": dt.datetime(2026, 1, 1, tzinfo=UTC)},
            r"Scalars\.day: expected date, got datetime",
        ),
        ({"status": "approved"}, r"Scalars\.status: expected Status, got 'approved'"),
    ],
)
def test_value_of_the_wrong_type_is_refused_at_encode(
    registry: Registry, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(SerializationError, match=message):
        registry.encode(scalars(**changes))


def test_list_given_for_a_tuple_field_is_refused_at_encode(registry: Registry) -> None:
    value = Collections([], ["a", 1], (), frozenset(), {}, None)  # type: ignore[arg-type]
    with pytest.raises(
        SerializationError, match=r"Collections\.pair: expected tuple, got list"
    ):
        registry.encode(value)


def test_missing_field_without_default_names_type_version_and_field(
    registry: Registry,
) -> None:
    data = registry.encode(scalars()).data
    del data["ident"]
    with pytest.raises(
        SerializationError,
        match=r"cannot decode 'scalars' v1: missing field Scalars\.ident \(it has no default",
    ):
        registry.decode("scalars", 1, data)


def test_missing_nested_field_after_upcasting_names_the_stored_version(
    registry: Registry,
) -> None:
    data = {
        "id": str(uuid.uuid4()),
        "title": "t",
        "author": "a",
        "findings": [{"severity": 1}],
    }
    with pytest.raises(
        SerializationError,
        match=r"cannot decode 'document' v1 \(upcast to 'document' v3\): missing field Document\.findings\[0\]\.code",
    ):
        registry.decode("document", 1, data)


def test_unexpected_field_is_refused_not_dropped(registry: Registry) -> None:
    data = registry.encode(scalars()).data
    data["surprise"] = 1
    with pytest.raises(
        SerializationError,
        match=r"Scalars: unexpected fields 'surprise' \(not fields of the class; an upcaster must drop or move them\)",
    ):
        registry.decode("scalars", 1, data)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("number", "1", r"Scalars\.number: expected a JSON integer, got str '1'"),
        ("number", True, r"Scalars\.number: expected a JSON integer, got bool True"),
        ("flag", 0, r"Scalars\.flag: expected true or false, got int 0"),
        ("ratio", "NaN", r"Scalars\.ratio: expected a JSON number"),
        (
            "amount",
            "abc",
            r"Scalars\.amount: expected a decimal number as a JSON string",
        ),
        ("ident", "not-a-uuid", r"Scalars\.ident: expected a UUID as a JSON string"),
        (
            "at",
            "2026-01-01T00:00:00",
            r"Scalars\.at: expected an ISO 8601 datetime with a UTC offset",
        ),
        ("day", "31/12/1999", r"Scalars\.day: expected an ISO 8601 date"),
        ("status", "gone", r"Scalars\.status: 'gone' is not a value of Status"),
    ],
)
def test_stored_value_of_the_wrong_type_is_refused_at_decode(
    registry: Registry, key: str, value: Any, message: str
) -> None:
    data = registry.encode(scalars()).data
    data[key] = value
    with pytest.raises(SerializationError, match=message):
        registry.decode("scalars", 1, data)


def test_float_field_accepts_a_json_integer(registry: Registry) -> None:
    data = registry.encode(scalars()).data
    data["ratio"] = 2
    decoded = registry.decode("scalars", 1, data)
    assert decoded.ratio == 2.0
    assert type(decoded.ratio) is float


def test_unknown_type_name_at_decode(registry: Registry) -> None:
    with pytest.raises(
        UnknownTypeError,
        match="unknown type name 'nope': register it, or an upcaster that renames it",
    ) as info:
        registry.decode("nope", 1, {})
    assert info.value.type_name == "nope"


def test_payload_newer_than_the_code_raises_future_schema_version(
    registry: Registry,
) -> None:
    with pytest.raises(
        FutureSchemaVersionError,
        match="'document' payload has schema version 4, newer than 3, the newest this code knows",
    ) as info:
        registry.decode("document", 4, {})
    assert (info.value.type_name, info.value.version, info.value.current) == (
        "document",
        4,
        3,
    )


def test_schema_version_that_never_existed(registry: Registry) -> None:
    with pytest.raises(SerializationError, match="'document' has no schema version 0"):
        registry.decode("document", 0, {})


def test_attrs_validator_failure_at_decode_is_a_serialization_error() -> None:
    @attrs.frozen
    class Positive:
        n: int = attrs.field(validator=attrs.validators.gt(0))

    registry = Registry()
    registry.add(Positive, "positive")
    with pytest.raises(
        SerializationError,
        match=r"cannot decode 'positive' v1: .*Positive: 'n' must be > 0",
    ):
        registry.decode("positive", 1, {"n": -1})


def test_errors_are_chained_to_their_cause(registry: Registry) -> None:
    with pytest.raises(SerializationError) as info:
        registry.decode("scalars", 1, {})
    assert info.value.__cause__ is not None


def test_stored_value_for_a_transient_field_is_an_unexpected_field(
    registry: Registry,
) -> None:
    doc = Document(uuid.uuid4(), "n", Author("a"), Status.DRAFT)
    data = registry.encode(doc).data
    data["pending"] = ["stored by mistake"]
    with pytest.raises(
        SerializationError, match=r"Document: unexpected fields 'pending'"
    ):
        registry.decode("document", 3, data)


def test_non_object_where_a_nested_class_belongs_is_named(registry: Registry) -> None:
    doc = Document(uuid.uuid4(), "n", Author("a"), Status.DRAFT)
    data = registry.encode(doc).data
    data["author"] = ["a"]
    with pytest.raises(
        SerializationError,
        match=r"Document\.author: expected a JSON object, got \['a'\]",
    ):
        registry.decode("document", 3, data)


class Permission(enum.IntFlag):
    READ = 1
    WRITE = 2


@attrs.frozen
class Granted:
    permission: Permission


@pytest.mark.parametrize(
    "permission",
    [Permission.READ, Permission.READ | Permission.WRITE, Permission(0)],
    ids=["one member", "two members", "none"],
)
def test_a_flag_of_combined_members_round_trips(permission: Permission) -> None:
    registry = Registry()
    registry.add(Granted, "granted")
    payload = registry.encode(Granted(permission))
    assert registry.decode("granted", 1, payload.data) == Granted(permission)
    assert registry.decode("granted", 1, json.loads(json.dumps(payload.data))) == (
        Granted(permission)
    )


@attrs.frozen
class Marker:
    """A value object without fields."""


@attrs.frozen
class Tagged:
    marker: Marker
    markers: list[Marker]


def test_a_nested_class_without_fields_registers_and_round_trips() -> None:
    registry = Registry()
    registry.add(Tagged, "tagged")
    value = Tagged(Marker(), [Marker(), Marker()])
    payload = registry.encode(value)
    assert payload.data == {"marker": {}, "markers": [{}, {}]}
    assert registry.decode("tagged", 1, payload.data) == value
    with pytest.raises(SerializationError, match="marker"):
        registry.decode("tagged", 1, {"marker": {"stray": 1}, "markers": []})


@attrs.frozen
class Reading:
    value: float


def test_an_integer_too_big_for_a_float_field_is_a_serialization_error() -> None:
    registry = Registry()
    registry.add(Reading, "reading")
    with pytest.raises(SerializationError, match=r"Reading\.value"):
        registry.decode("reading", 1, {"value": 10**400})


@attrs.define
class Node:
    child: Node | None = None


def test_an_object_holding_itself_is_a_serialization_error() -> None:
    registry = Registry()
    registry.add(Node, "node")
    looped = Node()
    looped.child = looped
    with pytest.raises(SerializationError, match="recursion limit, or holding itself"):
        registry.encode(looped)


def test_a_payload_nested_past_the_recursion_limit_is_a_serialization_error() -> None:
    registry = Registry()
    registry.add(Node, "node")
    data: dict[str, Any] | None = None
    for _ in range(5_000):
        data = {"child": data}
    assert data is not None
    for version in (1, 0):  # the current version, and the upcasting path
        with pytest.raises(SerializationError):
            registry.decode("node", version, data)


def test_a_field_whose_name_is_no_identifier_is_refused_at_registration() -> None:
    # attrs builds it (without the methods that would read the field by name).
    keyworded = attrs.make_class(
        "Keyworded",
        {"class": attrs.field(type=int, alias="klass")},
        frozen=True,
        repr=False,
        eq=False,
    )
    assert getattr(keyworded(klass=1), "class") == 1
    with pytest.raises(RegistrationError, match="not a Python identifier"):
        Registry().add(keyworded, "keyworded")
