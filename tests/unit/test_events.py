import time
import uuid

import attrs
import pytest

from eventstore import InvalidArgumentError, LogPosition, NewEvent, RecordedEvent


def test_log_positions_order_by_transaction_then_position() -> None:
    positions = [LogPosition(2, 1), LogPosition(1, 9), LogPosition(1, 3)]
    assert sorted(positions) == [
        LogPosition(1, 3),
        LogPosition(1, 9),
        LogPosition(2, 1),
    ]


@pytest.mark.parametrize("position", [LogPosition(0, 0), LogPosition(123456789012, 42)])
def test_log_position_text_round_trips(position: LogPosition) -> None:
    assert LogPosition.parse(str(position)) == position


@pytest.mark.parametrize(
    "text",
    [
        "",
        "12",
        "1/",
        "/2",
        "a/b",
        "-1/2",
        "1/2/3",
        "1 / 2",
        "\u00b2/1",
        "1/\u0661",
        "1/2\n",
        "9" * 20 + "/1",
    ],
)
def test_malformed_log_position_text_is_refused(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="not a log position"):
        LogPosition.parse(text)


def test_new_event_defaults() -> None:
    event = NewEvent("t", {"a": 1})
    assert event.metadata == {}
    assert isinstance(event.event_id, uuid.UUID)
    assert event.schema_version == 1


def test_default_event_ids_are_time_ordered_uuid7s_of_the_standard_type() -> None:
    before_ms = time.time_ns() // 1_000_000
    ids = [NewEvent("t", {}).event_id for _ in range(2000)]
    after_ms = time.time_ns() // 1_000_000
    assert {type(event_id) for event_id in ids} == {uuid.UUID}
    assert {event_id.version for event_id in ids} == {7}
    assert {event_id.variant for event_id in ids} == {uuid.RFC_4122}
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # time-ordered, even within one millisecond
    # The first 48 bits are the Unix time in milliseconds (RFC 9562).
    stamps = [event_id.int >> 80 for event_id in ids]
    assert before_ms <= stamps[0] <= stamps[-1] <= after_ms


def test_callers_may_still_pass_any_uuid() -> None:
    given = uuid.UUID(int=42)
    assert NewEvent("t", {}, event_id=given).event_id == given
    assert NewEvent("t", {}, event_id=uuid.uuid4()).event_id.version == 4


def test_recorded_event_fields_keep_the_order_both_backends_build_them_in() -> None:
    # InMemoryEventStore calls RecordedEvent positionally, for speed, and the
    # PostgreSQL row mapping sets its slots in this order; reordering its
    # fields must fail here first.
    assert [field.name for field in attrs.fields(RecordedEvent)] == [
        "stream_id",
        "version",
        "position",
        "type",
        "data",
        "metadata",
        "event_id",
        "schema_version",
        "recorded_at",
    ]
