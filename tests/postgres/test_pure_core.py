"""The PostgreSQL backend's pure decisions, checked without a server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from eventstore import ExpectedVersion, HealthStatus, LogPosition, RecordedEvent
from eventstore._validation import EncodedAppend, EncodedEvent
from eventstore.health import PoolMetrics
from eventstore.postgres import _sql
from eventstore.postgres._pool import saturated_by_stats


def metrics(in_use: int, waiting: int, max_size: int = 10) -> PoolMetrics:
    return PoolMetrics(
        min_size=1,
        max_size=max_size,
        size=in_use,
        available=0,
        in_use=in_use,
        waiting=waiting,
        utilization_pct=100.0 * in_use / max_size,
        timeouts=0,
    )


@pytest.mark.parametrize(
    ("in_use", "waiting", "status"),
    [
        (0, 0, HealthStatus.OK),
        (9, 0, HealthStatus.OK),  # 90% exactly is still ok
        (10, 0, HealthStatus.DEGRADED),
        (1, 1, HealthStatus.DEGRADED),
    ],
)
def test_pool_figures_decide_ok_or_degraded(
    in_use: int, waiting: int, status: HealthStatus
) -> None:
    assert metrics(in_use, waiting).status is status


def test_a_passed_in_pool_is_exhausted_only_when_full_idle_free_and_not_failing() -> (
    None
):
    full = {"pool_size": 4, "pool_available": 0, "connections_errors": 2}
    assert saturated_by_stats(full, 4, seen_errors=2) == (True, 2)
    # New failed connection attempts since the last look: unreachable, not full.
    assert saturated_by_stats(full, 4, seen_errors=1) == (False, 2)
    assert saturated_by_stats({**full, "pool_available": 1}, 4, 2) == (False, 2)
    assert saturated_by_stats({**full, "pool_size": 3}, 4, 2) == (False, 2)


def append(stream_id: str) -> EncodedAppend:
    event = EncodedEvent(uuid.uuid4(), "t", 1, "{}", "{}")
    return EncodedAppend(stream_id, ExpectedVersion.ANY, (event,))


def test_the_clashing_append_is_found_by_the_key_in_the_detail() -> None:
    appends = [append("a-1"), append("a-12"), append("b")]
    detail = "Key (stream_id, version)=(a-12, 3) already exists."
    assert _sql.clashing_append(appends, detail).stream_id == "a-12"
    assert _sql.clashing_append(appends, None).stream_id == "a-1"
    # A stream id that starts like another, up to a comma, is told apart.
    tricky = [append("a"), append("a, 3")]
    detail = "Key (stream_id, version)=(a, 3, 5) already exists."
    assert _sql.clashing_append(tricky, detail).stream_id == "a, 3"
    detail = "Key (stream_id, version)=(a, 5) already exists."
    assert _sql.clashing_append(tricky[::-1], detail).stream_id == "a"


def test_append_rows_map_to_a_result_in_version_order() -> None:
    rows = [(3, 10, 7), (2, 10, 6)]
    result = _sql.result_from_rows("s", rows)
    assert (result.stream_id, result.version) == ("s", 3)
    assert result.positions == (LogPosition(10, 6), LogPosition(10, 7))


@pytest.mark.parametrize(
    ("rows", "layout"),
    [
        ([], (None, None, ())),
        ([(2, 0, [])], (2, 1, ())),
        ([(2, 8, None)], (2, 8, ())),
        ([(1, None, ['"s"."events"'])], (1, None, ('"s"."events"',))),
    ],
)
def test_the_layout_row_reads_as_version_partitions_and_missing_tables(
    rows: list[tuple[Any, ...]], layout: tuple[int | None, int | None, tuple[str, ...]]
) -> None:
    assert _sql.layout_from_rows(rows) == layout


@pytest.mark.parametrize(
    ("table", "constraint", "clash"),
    [
        ("events", "events_pkey", True),
        ("events_p3", "events_p3_pkey", True),
        ("events", "events_stream_id_event_id_key", False),
        ("streams", "streams_pkey", False),
        ("streams_p1", "streams_p1_pkey", False),
        (None, None, False),
    ],
)
def test_only_the_stream_version_key_is_the_backstop(
    table: str | None, constraint: str | None, clash: bool
) -> None:
    assert _sql.is_stream_version_clash(table, constraint) is clash


def test_row_mappers_build_the_same_event_as_its_constructor() -> None:
    event_id = uuid.UUID(int=7)
    at = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    paris = at.astimezone(timezone(timedelta(hours=1)))
    expected = RecordedEvent(
        "s", 3, LogPosition(9, 4), "t", {"n": 1}, {}, event_id, 2, at
    )
    row = (3, 9, 4, "t", '{"n": 1}', "{}", event_id, 2, paris)
    for event in (
        _sql.stream_event_from_row("s", row),
        _sql.event_from_row(("s", *row)),
    ):
        # Every field set, equal to the constructor's, still frozen.
        assert event == expected
        assert repr(event) == repr(expected)
        assert event.recorded_at.tzinfo is UTC
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.version = 4  # type: ignore[misc]
