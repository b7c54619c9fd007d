"""Both backends here leave no gap in the log for a refused append, a property the contract does not ask of every backend."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from eventstore import (
    ConcurrencyError,
    DuplicateEventError,
    EventStore,
    InMemoryEventStore,
    InvalidArgumentError,
    NewEvent,
)
from eventstore.postgres import PostgresEventStore


@pytest.fixture(
    params=[
        "memory",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("postgres-partitioned", marks=pytest.mark.postgres),
    ]
)
def store(request: pytest.FixtureRequest) -> Iterator[EventStore]:
    if request.param == "memory":
        with InMemoryEventStore() as memory:
            yield memory
        return
    options: dict[str, Any] = {}
    if request.param == "postgres-partitioned":
        options["partitions"] = 4
    with PostgresEventStore(
        request.getfixturevalue("postgres_dsn"),
        schema=request.getfixturevalue("postgres_schema"),
        **options,
    ) as postgres:
        postgres.migrate()
        yield postgres


def test_refused_appends_draw_no_log_position(store: EventStore) -> None:
    first = store.append("s", [NewEvent("t", {})])
    with pytest.raises(ConcurrencyError):
        store.append("s", [NewEvent("t", {}), NewEvent("t", {})], expected_version=5)
    (stored,) = store.read_stream("s")
    with pytest.raises(DuplicateEventError):
        store.append(
            "s", [NewEvent("x", {}, event_id=stored.event_id), NewEvent("t", {})]
        )
    with pytest.raises(InvalidArgumentError):
        store.append("s", [NewEvent("x", {"bad": math.nan})])
    second = store.append("s", [NewEvent("t", {})])
    assert second.positions[0].position == first.positions[0].position + 1
