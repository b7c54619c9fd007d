"""The pure paging of stream reads: which page comes next, with no server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from eventstore import LogPosition, RecordedEvent
from eventstore.postgres._reading import (
    PAGE_SIZE,
    StreamPaging,
    read_all_params,
    streams,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def page(versions: range) -> list[RecordedEvent]:
    return [
        RecordedEvent("s", v, LogPosition(1, v), "t", {}, {}, uuid.UUID(int=v), 1, NOW)
        for v in versions
    ]


def test_an_empty_range_reads_nothing() -> None:
    assert StreamPaging.of("s", 5, 4, backwards=False, limit=None) is None


def test_forward_pages_follow_each_other_until_the_stream_version_at_the_call() -> None:
    paging = StreamPaging.of("s", 1, None, backwards=False, limit=None)
    assert paging is not None
    assert paging.params()["limit"] == PAGE_SIZE
    paging.stop_at(2 * PAGE_SIZE + 5)
    assert paging.advance(page(range(1, PAGE_SIZE + 1)))
    assert paging.params() == {
        "stream_id": "s",
        "low": PAGE_SIZE + 1,
        "high": 2 * PAGE_SIZE + 5,
        "limit": PAGE_SIZE,
    }
    assert paging.advance(page(range(PAGE_SIZE + 1, 2 * PAGE_SIZE + 1)))
    paging.params()
    # A short page is the last one.
    assert not paging.advance(page(range(2 * PAGE_SIZE + 1, 2 * PAGE_SIZE + 6)))


def test_a_limit_shrinks_the_pages_and_ends_the_read() -> None:
    paging = StreamPaging.of("s", 1, None, backwards=False, limit=PAGE_SIZE + 10)
    assert paging is not None
    assert paging.params()["limit"] == PAGE_SIZE
    assert paging.advance(page(range(1, PAGE_SIZE + 1)))
    assert paging.params()["limit"] == 10
    assert not paging.advance(page(range(PAGE_SIZE + 1, PAGE_SIZE + 11)))


def test_backward_pages_walk_down_and_stop_below_the_first_version() -> None:
    paging = StreamPaging.of("s", 3, 2 * PAGE_SIZE, backwards=True, limit=None)
    assert paging is not None
    paging.params()
    assert paging.advance(page(range(2 * PAGE_SIZE, PAGE_SIZE, -1)))
    assert paging.params()["high"] == PAGE_SIZE
    # The next page holds the 998 versions down to 3, fewer than asked: the end.
    assert not paging.advance(page(range(PAGE_SIZE, 2, -1)))


def test_read_all_parameters_carry_the_checkpoint() -> None:
    assert read_all_params(None, 10) == {"limit": 10}
    assert read_all_params(LogPosition(7, 3), 10) == {
        "transaction_id": 7,
        "position": 3,
        "limit": 10,
    }


def test_pages_of_300_rows_or_more_are_streamed() -> None:
    assert [streams(rows) for rows in (1, 299, 300, PAGE_SIZE)] == [
        False,
        False,
        True,
        True,
    ]
