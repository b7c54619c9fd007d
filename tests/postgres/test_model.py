"""A state machine drives the in-memory and the PostgreSQL store side by side; they must agree."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import psycopg
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from psycopg import sql

from eventstore import (
    AppendRequest,
    AppendResult,
    ConcurrencyError,
    DuplicateEventError,
    ExpectedVersion,
    InMemoryEventStore,
    NewEvent,
    RecordedEvent,
    Snapshot,
)
from eventstore.postgres import PoolConfig, PostgresEventStore
from eventstore.store import EventStore
from eventstore.testing.contract import read_log

pytestmark = pytest.mark.postgres

STREAMS = st.sampled_from(["a", "b", "c"])
EXPECTED = st.sampled_from(["actual", "behind", "ahead", 0, "any", "exists"])


def _expected(choice: object, actual: int) -> int | ExpectedVersion:
    if choice == "actual":
        return actual
    if choice == "behind":
        return max(actual - 1, 0)
    if choice == "ahead":
        return actual + 1
    if choice == "any":
        return ExpectedVersion.ANY
    if choice == "exists":
        return ExpectedVersion.EXISTS
    assert isinstance(choice, int)
    return choice


def _comparable(event: RecordedEvent) -> tuple[Any, ...]:
    # Positions and clocks differ between backends by design.
    return (
        event.stream_id,
        event.version,
        event.type,
        event.data,
        event.metadata,
        event.event_id,
        event.schema_version,
    )


def _outcome(result: object) -> object:
    if isinstance(result, AppendResult):
        return ("ok", result.stream_id, result.version, len(result.positions))
    if isinstance(result, list):
        return [_outcome(item) for item in result]
    if isinstance(result, ConcurrencyError):
        return ("conflict", result.stream_id, result.expected, result.actual)
    if isinstance(result, DuplicateEventError):
        return ("duplicate", result.stream_id, set(result.event_ids))
    raise AssertionError(f"unexpected outcome {result!r}")


class PostgresBehavesLikeMemory(RuleBasedStateMachine):
    dsn: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.schema = f"es_model_{uuid.uuid4().hex[:12]}"
        self.pg = PostgresEventStore(
            self.dsn, schema=self.schema, pool_config=PoolConfig(min_size=1, max_size=2)
        )
        self.pg.migrate()
        self.memory = InMemoryEventStore()
        self.sent: list[tuple[str, list[NewEvent]]] = []

    def _both(self, action: Callable[[EventStore], object]) -> None:
        outcomes = []
        for store in (self.memory, self.pg):
            try:
                outcomes.append(_outcome(action(store)))
            except (ConcurrencyError, DuplicateEventError) as exc:
                outcomes.append(_outcome(exc))
        assert outcomes[0] == outcomes[1]

    @rule(stream=STREAMS, count=st.integers(1, 3), choice=EXPECTED)
    def append(self, stream: str, count: int, choice: object) -> None:
        events = [NewEvent("t", {"i": i, "s": stream}) for i in range(count)]
        expected = _expected(choice, self.memory.stream_version(stream))
        self._both(
            lambda store: store.append(stream, events, expected_version=expected)
        )
        self.sent.append((stream, events))

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data(), choice=EXPECTED, elsewhere=st.booleans())
    def resend(self, data: st.DataObject, choice: object, elsewhere: bool) -> None:
        stream, events = data.draw(st.sampled_from(self.sent))
        if elsewhere:
            stream = "other"
        expected = _expected(choice, self.memory.stream_version(stream))
        self._both(
            lambda store: store.append(stream, events, expected_version=expected)
        )

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def resend_part(self, data: st.DataObject) -> None:
        stream, events = data.draw(st.sampled_from(self.sent))
        part = [*events[:1], NewEvent("t", {"new": True})]
        self._both(lambda store: store.append(stream, part))

    @rule(first=STREAMS, second=STREAMS, a=EXPECTED, b=EXPECTED)
    def append_many(self, first: str, second: str, a: object, b: object) -> None:
        if first == second:
            return
        requests = [
            AppendRequest(
                first,
                [NewEvent("m", {"to": first})],
                _expected(a, self.memory.stream_version(first)),
            ),
            AppendRequest(
                second,
                [NewEvent("m", {"to": second}), NewEvent("m", {"n": 2})],
                _expected(b, self.memory.stream_version(second)),
            ),
        ]
        self._both(lambda store: store.append_many(requests))

    @rule(stream=STREAMS, data=st.data())
    def snapshot(self, stream: str, data: st.DataObject) -> None:
        version = self.memory.stream_version(stream)
        if version == 0:
            return
        at = data.draw(st.integers(1, version))
        snapshot = Snapshot(stream, at, "state", 1, {"at": at})
        self.memory.save_snapshot(snapshot)
        self.pg.save_snapshot(snapshot)

    @invariant()
    def the_stores_agree(self) -> None:
        for stream in ("a", "b", "c", "other"):
            assert self.memory.stream_version(stream) == self.pg.stream_version(stream)
            assert [_comparable(e) for e in self.memory.read_stream(stream)] == [
                _comparable(e) for e in self.pg.read_stream(stream)
            ]
            assert [
                _comparable(e)
                for e in self.memory.read_stream(stream, backwards=True, limit=2)
            ] == [
                _comparable(e)
                for e in self.pg.read_stream(stream, backwards=True, limit=2)
            ]
            memory_load, pg_load = self.memory.load(stream), self.pg.load(stream)
            assert memory_load.version == pg_load.version
            assert [_comparable(e) for e in memory_load.events] == [
                _comparable(e) for e in pg_load.events
            ]
            assert (memory_load.snapshot is None) == (pg_load.snapshot is None)
            if memory_load.snapshot and pg_load.snapshot:
                assert memory_load.snapshot.version == pg_load.snapshot.version
                assert memory_load.snapshot.state == pg_load.snapshot.state

    def teardown(self) -> None:
        try:
            expected = [e.event_id for e in self.memory.read_all(limit=10_000)]
            logged = read_log(self.pg, len(expected))
            assert [e.event_id for e in logged] == expected
        finally:
            self.pg.close()
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA {} CASCADE").format(
                        sql.Identifier(self.schema)
                    )
                )


def test_postgres_behaves_like_the_in_memory_store(postgres_dsn: str) -> None:
    PostgresBehavesLikeMemory.dsn = postgres_dsn
    run_state_machine_as_test(
        PostgresBehavesLikeMemory,
        settings=settings(max_examples=15, stateful_step_count=20, deadline=None),
    )
