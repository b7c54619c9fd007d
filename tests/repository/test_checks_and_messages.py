"""A repository is checked when it is built, and its errors name what the caller passed."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pytest

from eventstore import (
    Aggregate,
    AggregateNotFound,
    AsyncInMemoryEventStore,
    AsyncRepository,
    ConfigError,
    EventStore,
    InMemoryEventStore,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    NewEvent,
    Repository,
    UnknownTypeError,
    applies,
    save_together,
)
from tests.repository.domain import (
    AsyncCounterRepository,
    Counter,
    CounterRepository,
    Incremented,
    make_registry,
)


def test_an_unregistered_snapshot_type_is_refused_when_the_repository_is_built(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    registry = make_registry(with_snapshot_type=False)
    with pytest.raises(ConfigError) as caught:
        CounterRepository(store, registry, snapshot_every=2)
    message = str(caught.value)
    assert "CounterRepository.snapshot_every is 2" in message
    assert "snapshot type Counter is not registered" in message
    # Without snapshots the same registry is enough, and saves log nothing.
    repo = CounterRepository(store, registry, snapshot_every=None)
    counter = Counter.open("c1", "x")
    counter.increment()
    with caplog.at_level(logging.WARNING, logger="eventstore.repository"):
        repo.create(counter)
    assert caplog.records == []


@attrs.frozen
class Summary:
    total: int


def test_a_declared_snapshot_type_is_checked_too(store: EventStore) -> None:
    class SummaryRepository(CounterRepository):
        snapshot_type = Summary

        def snapshot_state(self, aggregate: Counter) -> object:
            return Summary(aggregate.total)

    with pytest.raises(ConfigError, match="snapshot type Summary is not registered"):
        SummaryRepository(store, make_registry(), snapshot_every=5)
    registry = make_registry()
    registry.register("counter.summary")(Summary)
    assert SummaryRepository(store, registry, snapshot_every=5).snapshot_type is Summary


@attrs.define
class Ledger(Aggregate):
    owner: str
    currency: str
    balance: int = 0


class LedgerRepository(Repository[Ledger]):
    aggregate_type = Ledger
    stream_prefix = "ledger"


def test_an_aggregate_that_cannot_be_built_blank_is_refused_naming_the_fix(
    store: EventStore,
) -> None:
    with pytest.raises(ConfigError) as caught:
        LedgerRepository(store, make_registry())
    message = str(caught.value)
    assert "Ledger cannot be built blank" in message
    assert "owner, currency have no default" in message
    assert "Ledger.blank()" in message
    assert "default" in message
    assert not isinstance(caught.value, TypeError)


def test_an_aggregate_with_its_own_blank_or_a_repository_that_builds_it_is_accepted(
    store: EventStore,
) -> None:
    @attrs.define
    class OwnBlank(Ledger):
        @classmethod
        def blank(cls, aggregate_id: str) -> OwnBlank:
            return cls(id=aggregate_id, owner="", currency="EUR")

    class OwnBlankRepository(LedgerRepository):
        aggregate_type = OwnBlank

    class Builds(LedgerRepository):
        def new_aggregate(self, aggregate_id: str) -> Ledger:
            return Ledger(id=aggregate_id, owner="", currency="EUR")

    assert (
        OwnBlankRepository(store, make_registry()).new_aggregate("a").currency == "EUR"
    )
    assert Builds(store, make_registry()).new_aggregate("b").currency == "EUR"


@pytest.fixture
def saved(store: EventStore) -> CounterRepository:
    repo = CounterRepository(store, make_registry())
    counter = Counter.open("c1", "x")
    counter.increment()
    repo.create(counter)  # version 2
    return repo


@pytest.mark.parametrize("version", [0, -3])
def test_get_names_its_own_version_argument(
    saved: CounterRepository, version: int
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        saved.get("c1", version=version)
    assert str(caught.value) == f"version must be at least 1, got {version}"


def test_get_past_the_end_of_the_stream_says_how_far_it_goes(
    saved: CounterRepository,
) -> None:
    with pytest.raises(AggregateNotFound) as caught:
        saved.get("c1", version=99)
    error = caught.value
    assert str(error) == (
        "aggregate 'c1' (stream 'counter-c1') is at version 2; "
        "version 99 does not exist yet"
    )
    assert (error.aggregate_id, error.version, error.actual) == ("c1", 99, 2)
    assert saved.get("c1", version=2).total == 1
    with pytest.raises(AggregateNotFound, match="'nobody' not found"):
        saved.get("nobody")


def test_an_unknown_event_type_during_a_load_names_the_stream_and_version(
    saved: CounterRepository, store: EventStore
) -> None:
    store.append("counter-c1", [NewEvent("counter.vanished", {})], expected_version=2)
    with pytest.raises(UnknownTypeError) as caught:
        saved.get("c1")
    error = caught.value
    assert (error.type_name, error.stream_id, error.stream_version) == (
        "counter.vanished",
        "counter-c1",
        3,
    )
    assert "(stream 'counter-c1', version 3)" in str(error)


@pytest.mark.parametrize("aggregate_id", [42, None, b"c1"])
def test_a_non_str_aggregate_id_is_an_invalid_argument(
    saved: CounterRepository, aggregate_id: Any
) -> None:
    with pytest.raises(InvalidArgumentTypeError, match="aggregate id must be a str"):
        saved.get(aggregate_id)
    with pytest.raises(InvalidArgumentError):
        saved.update(aggregate_id, lambda counter: counter.increment())


def test_a_repository_needs_its_aggregate_type_even_when_it_builds_its_own() -> None:
    class BuildsWithoutType(Repository[Counter]):
        stream_prefix = "counter"

        def new_aggregate(self, aggregate_id: str) -> Counter:
            return Counter(id=aggregate_id)

    class AsyncBuildsWithoutType(AsyncRepository[Counter]):
        stream_prefix = "counter"

        def new_aggregate(self, aggregate_id: str) -> Counter:
            return Counter(id=aggregate_id)

    # Saves, update()'s result and snapshots are checked against it: refused
    # when built, not with an AttributeError after a command ran.
    with pytest.raises(
        ConfigError, match=r"BuildsWithoutType\.aggregate_type must be a class"
    ):
        BuildsWithoutType(InMemoryEventStore(), make_registry())
    with pytest.raises(
        ConfigError, match=r"AsyncBuildsWithoutType\.aggregate_type must be a class"
    ):
        AsyncBuildsWithoutType(AsyncInMemoryEventStore(), make_registry())


def test_a_repository_refuses_the_other_kind_of_store_and_a_bad_retry_policy() -> None:
    with pytest.raises(
        InvalidArgumentTypeError,
        match="CounterRepository needs an EventStore, got AsyncInMemoryEventStore",
    ):
        CounterRepository(AsyncInMemoryEventStore(), make_registry())  # type: ignore[arg-type]
    sync_store = InMemoryEventStore()
    with pytest.raises(
        InvalidArgumentTypeError,
        match="AsyncCounterRepository needs an AsyncEventStore, got InMemoryEventStore",
    ):
        AsyncCounterRepository(sync_store, make_registry())  # type: ignore[arg-type]
    with pytest.raises(
        InvalidArgumentTypeError, match="retry_policy must be a RetryPolicy"
    ):
        CounterRepository(sync_store, make_registry(), retry_policy=3)  # type: ignore[arg-type]
    # A missing registry failed at the first save with AttributeError.
    with pytest.raises(InvalidArgumentTypeError, match="registry must be a Registry"):
        CounterRepository(sync_store, None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentTypeError, match="registry must be a Registry"):
        CounterRepository(sync_store, None, snapshot_every=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "items",
    [["repository alone"], [("one", "two", "three")], [(None, None)]],
    ids=repr,
)
def test_save_together_refuses_what_is_not_repository_aggregate_pairs(
    store: EventStore, items: list[Any]
) -> None:
    counter = Counter(id="c1")
    counter.raise_event(Incremented(1))
    repo = CounterRepository(store, make_registry())
    with pytest.raises(
        InvalidArgumentTypeError, match=r"\(repository, aggregate\) pairs"
    ):
        save_together([(repo, counter), *items])
    assert store.stream_version("counter-c1") == 0


@attrs.define
class Note(Aggregate):
    words: int = 0

    @applies(Incremented)
    def _counted(self, event: Incremented) -> None:
        self.words += event.amount


def test_an_aggregate_of_another_type_is_refused_before_anything_is_written(
    store: EventStore,
) -> None:
    note = Note(id="c1")
    note.raise_event(Incremented(1))
    repo = CounterRepository(store, make_registry())
    with pytest.raises(
        InvalidArgumentTypeError, match="saves Counter aggregates, got Note"
    ):
        repo.save(note)  # type: ignore[arg-type]
    assert store.stream_version("counter-c1") == 0
