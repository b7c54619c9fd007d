"""A small aggregate for the repository tests: a named counter."""

from __future__ import annotations

import attrs

from eventstore import (
    Aggregate,
    AsyncRepository,
    Registry,
    Repository,
    RetryPolicy,
    applies,
)


@attrs.frozen
class CounterOpened:
    name: str


@attrs.frozen
class Incremented:
    amount: int


@attrs.frozen
class Renamed:
    name: str


@attrs.define
class Counter(Aggregate):
    name: str = ""
    total: int = 0
    history: list[int] = attrs.field(factory=list)

    @classmethod
    def open(cls, counter_id: str, name: str) -> Counter:
        counter = cls(id=counter_id)
        counter.raise_event(CounterOpened(name))
        return counter

    def increment(self, amount: int = 1) -> None:
        if amount <= 0:
            raise ValueError("increments are positive")
        self.raise_event(Incremented(amount))

    def rename(self, name: str) -> None:
        self.raise_event(Renamed(name))

    @applies(CounterOpened, Renamed)
    def _named(self, event: CounterOpened | Renamed) -> None:
        self.name = event.name

    @applies(Incremented)
    def _incremented(self, event: Incremented) -> None:
        self.total += event.amount
        self.history.append(event.amount)


def make_registry(*, with_snapshot_type: bool = True) -> Registry:
    registry = Registry()
    registry.register("counter.opened", version=1)(CounterOpened)
    registry.register("counter.incremented", version=1)(Incremented)
    registry.register("counter.renamed", version=1)(Renamed)
    if with_snapshot_type:
        registry.register("counter", version=1)(Counter)
    return registry


class CounterRepository(Repository[Counter]):
    aggregate_type = Counter
    stream_prefix = "counter"
    # Declared again: inferred from 10 alone it would be int, yet an instance
    # may pass snapshot_every=None (never).
    snapshot_every: int | None = 10
    retry_policy = RetryPolicy(
        max_retries=3, base_delay=0.0, max_delay=0.0, jitter=False
    )


class AsyncCounterRepository(AsyncRepository[Counter]):
    """`CounterRepository`'s async twin: the same class attributes."""

    aggregate_type = Counter
    stream_prefix = "counter"
    snapshot_every: int | None = 10
    retry_policy = CounterRepository.retry_policy
