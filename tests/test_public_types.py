"""
The public API's types as a user's code sees them, checked by mypy in CI (`mypy tests`).

Each ``assert_type`` fails the type check if a type loosens to ``Any`` or
changes; each ``# type: ignore[arg-type]`` marks a call that must stay a
type error (the project runs mypy with ``warn_unused_ignores``, so an
ignore that stops being needed fails too). At run time the test only
runs the calls that are correct.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, assert_type

import attrs
import pytest
import pytest_asyncio
from hypothesis import strategies as st

from eventstore import (
    AsyncInMemoryEventStore,
    AsyncSubscription,
    InMemoryEventStore,
    RecordedEvent,
    Registry,
    Subscription,
)
from eventstore.testing import (
    AsyncEventStoreContract,
    EventStoreContract,
    assert_roundtrip,
    strategy_for,
)

registry = Registry()


@registry.register("typed.noted", version=1)
@attrs.frozen
class Noted:
    text: str


def test_the_kits_helpers_keep_the_class_they_are_given() -> None:
    assert_type(assert_roundtrip(registry, Noted("x")), Noted)
    assert_type(strategy_for(Noted), st.SearchStrategy[Noted])


def _batch(events: Sequence[RecordedEvent]) -> None:
    pass


def _in_transaction(events: list[RecordedEvent], conn: Any) -> None:
    pass


def _not_a_batch(number: int) -> None:
    pass


async def _async_batch(events: list[RecordedEvent]) -> None:
    pass


def test_handlers_are_typed_by_what_they_are_given() -> None:
    store = InMemoryEventStore()
    seen: list[RecordedEvent] = []
    Subscription(store, "extend", seen.extend)
    Subscription(store, "lambda", lambda events: None)
    Subscription(store, "sequence", _batch)
    AsyncSubscription(AsyncInMemoryEventStore(), "async", _async_batch)
    assert seen == []


def _checked_by_mypy_only(store: InMemoryEventStore, seen: list[RecordedEvent]) -> None:
    # Never called. A handler given a connection too is a transactional
    # one's shape (the memory store refuses that delivery at run time); the
    # other three are refused by the types.
    Subscription(store, "transactional", _in_transaction)
    Subscription(store, "nothing", lambda: None)  # type: ignore[arg-type]
    Subscription(store, "int", _not_a_batch)  # type: ignore[arg-type]
    Subscription(store, "one event", seen.append)  # type: ignore[arg-type]


class _SyncBackend(EventStoreContract):
    # As docs/testing.md writes the override.
    @pytest.fixture
    def store(self) -> Iterator[InMemoryEventStore]:
        with InMemoryEventStore() as fresh:
            yield fresh


class _AsyncBackend(AsyncEventStoreContract):
    @pytest_asyncio.fixture
    async def store(self) -> AsyncIterator[AsyncInMemoryEventStore]:
        async with AsyncInMemoryEventStore() as fresh:
            yield fresh


def test_the_contracts_store_fixture_overrides_type_check() -> None:
    # The classes above are what mypy checks; neither is collected (no Test prefix).
    assert issubclass(_AsyncBackend, AsyncEventStoreContract)
    assert issubclass(_SyncBackend, EventStoreContract)
