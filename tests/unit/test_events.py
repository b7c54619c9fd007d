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
    "text", ["", "12", "1/", "/2", "a/b", "-1/2", "1/2/3", "1 / 2"]
)
def test_malformed_log_position_text_is_refused(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="not a log position"):
        LogPosition.parse(text)


def test_new_event_defaults() -> None:
    event = NewEvent("t", {"a": 1})
    assert event.metadata == {}
    assert isinstance(event.event_id, uuid.UUID)
    assert event.schema_version == 1


def test_recorded_event_fields_keep_the_order_both_backends_build_them_in() -> None:
    # InMemoryEventStore and the PostgreSQL row mapping call RecordedEvent
    # positionally, for speed; reordering its fields must fail here first.
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
