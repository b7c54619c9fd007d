import functools
import logging
from collections.abc import Sequence
from typing import Any

import attrs
import pytest

from eventstore import (
    AggregateAlreadyExists,
    AggregateNotFound,
    AppendRequest,
    AppendResult,
    AsyncEventStore,
    ConcurrencyError,
    ConfigError,
    EventStore,
    InMemoryEventStore,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    Registry,
    Repository,
    RetryPolicy,
    StoreUnavailableError,
    UnhandledEventError,
    save_together,
)
from tests.repository.domain import (
    AsyncCounterRepository,
    Counter,
    CounterRepository,
    Incremented,
    make_registry,
)


@pytest.fixture
def repo(store: EventStore) -> CounterRepository:
    return CounterRepository(store, make_registry())


def test_a_created_aggregate_loads_with_its_state_and_version(
    repo: CounterRepository,
) -> None:
    counter = Counter.open("c1", "visits")
    counter.increment(3)
    result = repo.create(counter)
    assert result.version == 2
    assert counter.version == 2
    assert counter.pending_events == ()
    loaded = repo.get("c1")
    assert loaded == counter
    assert (loaded.name, loaded.total, loaded.version) == ("visits", 3, 2)


def test_stream_ids_join_prefix_and_id(
    repo: CounterRepository, store: EventStore
) -> None:
    repo.create(Counter.open("c1", "x"))
    assert repo.stream_id("c1") == "counter-c1"
    assert store.stream_version("counter-c1") == 1


def test_a_missing_aggregate_is_not_found(repo: CounterRepository) -> None:
    with pytest.raises(AggregateNotFound) as caught:
        repo.get("nope")
    assert caught.value.stream_id == "counter-nope"
    assert caught.value.aggregate_id == "nope"


def test_get_at_a_version_returns_the_state_then(repo: CounterRepository) -> None:
    counter = Counter.open("c1", "x")
    for amount in (1, 2, 3):
        counter.increment(amount)
    repo.create(counter)
    past = repo.get("c1", version=3)
    assert (past.total, past.history, past.version) == (3, [1, 2], 3)
    with pytest.raises(AggregateNotFound):
        repo.get("c1", version=9)


def test_save_expects_the_loaded_version(repo: CounterRepository) -> None:
    repo.create(Counter.open("c1", "x"))
    first, second = repo.get("c1"), repo.get("c1")
    first.increment()
    repo.save(first)
    second.increment()
    with pytest.raises(ConcurrencyError) as caught:
        repo.save(second)
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert second.pending_events == (Incremented(1),)


def test_saving_nothing_pending_writes_nothing(
    repo: CounterRepository, store: EventStore
) -> None:
    repo.create(Counter.open("c1", "x"))
    assert repo.save(repo.get("c1")) is None
    assert store.stream_version("counter-c1") == 1


def test_create_refuses_an_existing_id(repo: CounterRepository) -> None:
    repo.create(Counter.open("c1", "x"))
    with pytest.raises(AggregateAlreadyExists, match="'c1' already exists") as caught:
        repo.create(Counter.open("c1", "y"))
    error = caught.value
    assert isinstance(error, ConcurrencyError)  # caught where conflicts are
    assert (error.stream_id, error.aggregate_id, error.expected, error.actual) == (
        "counter-c1",
        "c1",
        0,
        1,
    )
    assert repo.get("c1").name == "x"


async def test_async_create_refuses_an_existing_id(
    async_store: AsyncEventStore,
) -> None:
    repo = AsyncCounterRepository(async_store, make_registry())
    await repo.create(Counter.open("c1", "x"))
    with pytest.raises(AggregateAlreadyExists) as caught:
        await repo.create(Counter.open("c1", "y"))
    assert (caught.value.aggregate_id, caught.value.actual) == ("c1", 1)
    assert (await repo.get("c1")).name == "x"


def test_create_needs_events(repo: CounterRepository) -> None:
    with pytest.raises(InvalidArgumentError):
        repo.create(Counter(id="c1"))


def test_metadata_is_stored_with_every_event(
    repo: CounterRepository, store: EventStore
) -> None:
    counter = Counter.open("c1", "x")
    counter.increment()
    repo.create(counter, metadata={"correlation_id": "req-7"})
    assert [e.metadata for e in store.read_stream("counter-c1")] == [
        {"correlation_id": "req-7"}
    ] * 2


def test_update_loads_runs_and_saves(repo: CounterRepository) -> None:
    repo.create(Counter.open("c1", "x"))
    updated = repo.update("c1", lambda c: c.increment(5))
    assert (updated.total, updated.version) == (5, 2)
    assert repo.get("c1") == updated


def test_save_all_is_atomic(repo: CounterRepository, store: EventStore) -> None:
    repo.create(Counter.open("a", "a"))
    repo.create(Counter.open("b", "b"))
    a, b = repo.get("a"), repo.get("b")
    store.append("counter-b", [make_registry().to_new_event(Incremented(1))])
    a.increment()
    b.increment()
    with pytest.raises(ConcurrencyError):
        repo.save_all([a, b])
    assert store.stream_version("counter-a") == 1
    fresh_b = repo.get("b")
    fresh_b.increment()
    results = repo.save_all([a, fresh_b])
    assert [r.version for r in results if r is not None] == [2, 3]


def test_save_together_refuses_repositories_on_different_stores() -> None:
    registry = make_registry()
    one = CounterRepository(InMemoryEventStore(), registry)
    two = CounterRepository(InMemoryEventStore(), registry)
    with pytest.raises(ConfigError):
        save_together([(one, Counter.open("a", "a")), (two, Counter.open("b", "b"))])


def test_instances_override_class_configuration(store: EventStore) -> None:
    policy = RetryPolicy(max_retries=0)
    repo = CounterRepository(
        store,
        make_registry(),
        stream_prefix="tally",
        snapshot_every=None,
        retry_policy=policy,
    )
    assert (repo.stream_prefix, repo.snapshot_every, repo.retry_policy) == (
        "tally",
        None,
        policy,
    )
    assert CounterRepository.stream_prefix == "counter"
    repo.create(Counter.open("c1", "x"))
    assert store.stream_version("tally-c1") == 1


@pytest.mark.parametrize("every", [0, -5, True, 2.5, "10"])
def test_a_bad_snapshot_interval_is_a_config_error(
    store: EventStore, every: Any
) -> None:
    with pytest.raises(ConfigError, match="snapshot_every"):
        CounterRepository(store, make_registry(), snapshot_every=every)


def test_a_repository_needs_a_stream_prefix(store: EventStore) -> None:
    class Nameless(Repository[Counter]):
        aggregate_type = Counter

    with pytest.raises(ConfigError, match="stream_prefix"):
        Nameless(store, make_registry())


def test_a_stream_prefix_ending_in_the_separator_is_refused(store: EventStore) -> None:
    # It made streams "counter--c1", beside a subscription's "counter-" filter.
    with pytest.raises(ConfigError, match="give 'counter'"):
        CounterRepository(store, make_registry(), stream_prefix="counter-")


def test_an_event_without_a_handler_is_an_error() -> None:
    counter = Counter(id="c1")
    with pytest.raises(UnhandledEventError, match="Counter has no handler for str"):
        counter.raise_event("not an event")
    assert counter.pending_events == ()


def test_the_repository_is_a_cooperative_mixin(store: EventStore) -> None:
    class HostBase:
        def __init__(self, *, tenant: str, **rest: Any) -> None:
            super().__init__(**rest)
            self.tenant = tenant

    class TenantCounters(CounterRepository, HostBase):
        pass

    repo = TenantCounters(store, make_registry(), tenant="acme")
    assert repo.tenant == "acme"
    repo.create(Counter.open("c1", "x"))
    assert repo.get("c1").name == "x"


# --- aggregates of the host's own, through the hooks ---------------------------------


@attrs.frozen
class Tally:
    """An immutable aggregate that does not derive from Aggregate."""

    key: str
    count: int = 0
    loaded_at: int = 0
    unsaved: tuple[Incremented, ...] = ()

    def increment(self, amount: int) -> "Tally":
        """Return the tally with the increment applied and pending: the state and its events agree."""
        return attrs.evolve(
            self,
            count=self.count + amount,
            unsaved=(*self.unsaved, Incremented(amount)),
        )


class TallyRepository(Repository[Tally]):
    aggregate_type = Tally
    stream_prefix = "tally"

    def new_aggregate(self, aggregate_id: str) -> Tally:
        return Tally(aggregate_id)

    def apply_event(self, aggregate: Tally, event: object) -> Tally:
        assert isinstance(event, Incremented)
        return attrs.evolve(aggregate, count=aggregate.count + event.amount)

    def pending_events(self, aggregate: Tally) -> Sequence[object]:
        return aggregate.unsaved

    def mark_saved(self, aggregate: Tally, version: int) -> None:
        object.__setattr__(aggregate, "loaded_at", version)
        object.__setattr__(aggregate, "unsaved", ())

    def version_of(self, aggregate: Tally) -> int:
        return aggregate.loaded_at

    def id_of(self, aggregate: Tally) -> str:
        return aggregate.key


def test_host_classes_work_through_the_hooks(store: EventStore) -> None:
    repo = TallyRepository(store, make_registry())
    repo.create(Tally("t1").increment(2).increment(3))
    loaded = repo.get("t1")
    assert (loaded.count, loaded.loaded_at) == (5, 2)


def test_a_host_class_without_hooks_gets_a_clear_error(store: EventStore) -> None:
    class Bare(Repository[Tally]):
        aggregate_type = Tally
        stream_prefix = "bare"

    # No blank() and no new_aggregate(): refused when the repository is built.
    with pytest.raises(ConfigError, match=r"Tally has no blank\(\).*new_aggregate"):
        Bare(store, make_registry())

    class HalfHooked(Bare):
        def new_aggregate(self, aggregate_id: str) -> Tally:
            return Tally(aggregate_id)

    with pytest.raises(ConfigError, match=r"override Repository\.pending_events"):
        HalfHooked(store, make_registry()).save(Tally("x"))


# --- transient errors: the same append is re-sent -------------------------------------


class FlakyStore(InMemoryEventStore):
    """Fails the next appends with a transient error, after or before committing them."""

    def __init__(self, *, failures: int, commit_first: bool) -> None:
        super().__init__()
        self.failures = failures
        self.commit_first = commit_first
        self.sent: list[list[AppendRequest]] = []

    def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        self.sent.append(list(requests))
        if self.failures:
            self.failures -= 1
            if self.commit_first:
                super().append_many(requests)
            raise StoreUnavailableError("connection lost before the reply")
        return super().append_many(requests)


@pytest.mark.parametrize(
    "commit_first", [True, False], ids=["reply-lost", "never-arrived"]
)
def test_a_transient_error_resends_the_same_append(commit_first: bool) -> None:
    store = FlakyStore(failures=2, commit_first=commit_first)
    sleeps: list[float] = []
    policy = RetryPolicy(base_delay=0.05, jitter=False, sleep=sleeps.append)
    repo = CounterRepository(store, make_registry(), retry_policy=policy)
    counter = Counter.open("c1", "x")
    counter.increment()
    result = repo.create(counter)
    assert result.version == 2
    assert store.stream_version("counter-c1") == 2
    assert [e.type for e in store.read_stream("counter-c1")] == [
        "counter.opened",
        "counter.incremented",
    ]
    assert len(store.sent) == 3
    ids = [[e.event_id for r in attempt for e in r.events] for attempt in store.sent]
    assert ids[0] == ids[1] == ids[2]
    assert [r.expected_version for attempt in store.sent for r in attempt] == [0, 0, 0]
    assert sleeps == [0.05, 0.1]


def test_transient_errors_give_up_after_the_policy_attempts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyStore(failures=10, commit_first=False)
    repo = CounterRepository(
        store,
        make_registry(),
        retry_policy=RetryPolicy(max_retries=2, sleep=lambda _s: None),
    )
    with (
        caplog.at_level("WARNING", logger="eventstore.repository"),
        pytest.raises(StoreUnavailableError),
    ):
        repo.create(Counter.open("c1", "x"))
    assert len(store.sent) == 3
    assert store.stream_version("counter-c1") == 0
    # Each retried attempt is logged; the last one is the caller's error.
    assert [r.message for r in caplog.records] == [
        "CounterRepository could not reach the store (connection lost before"
        f" the reply); trying again (attempt {n} of 3)"
        for n in (1, 2)
    ]


def test_saving_again_after_the_retries_gave_up_on_a_lost_reply_is_a_retry() -> None:
    # Every attempt committed and lost its reply: the retries gave up, yet
    # the events are stored. Saving the same aggregate again sends the same
    # ids, so the store returns the first result instead of a conflict.
    store = FlakyStore(failures=3, commit_first=True)
    repo = CounterRepository(
        store,
        make_registry(),
        retry_policy=RetryPolicy(max_retries=2, sleep=lambda _s: None),
    )
    counter = Counter.open("c1", "x")
    counter.increment()
    with pytest.raises(StoreUnavailableError):
        repo.create(counter)
    assert store.stream_version("counter-c1") == 2  # committed all the same
    result = repo.save(counter)
    assert result is not None
    assert (result.version, counter.version, counter.pending_events) == (2, 2, ())
    assert store.stream_version("counter-c1") == 2  # stored once
    sent = [[e.event_id for r in attempt for e in r.events] for attempt in store.sent]
    assert len(sent) == 4
    assert all(ids == sent[0] for ids in sent)


def test_update_does_not_rerun_the_command_for_a_transient_error() -> None:
    store = FlakyStore(failures=0, commit_first=True)
    repo = CounterRepository(
        store, make_registry(), retry_policy=RetryPolicy(sleep=lambda _s: None)
    )
    repo.create(Counter.open("c1", "x"))
    store.failures = 1
    runs: list[int] = []

    def command(counter: Counter) -> None:
        runs.append(1)
        counter.increment()

    assert repo.update("c1", command).total == 1
    assert runs == [1]
    assert repo.get("c1").total == 1


def test_conflicts_are_logged_with_stream_versions_and_attempt(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    repo = CounterRepository(store, make_registry())
    repo.create(Counter.open("c1", "x"))
    interfered: list[bool] = []

    def command(counter: Counter) -> None:
        if not interfered:  # another writer gets in between our load and our save, once
            interfered.append(True)
            other = repo.get("c1")
            other.increment(10)
            repo.save(other)
        counter.increment()

    with caplog.at_level(logging.WARNING, logger="eventstore.repository"):
        assert repo.update("c1", command).total == 11
    (record,) = caplog.records
    assert record.name == "eventstore.repository"
    assert record.levelno == logging.WARNING
    assert (
        record.getMessage()
        == "conflict on stream 'counter-c1': expected version 1, actual 2 (attempt 1 of 4)"
    )
    # Set through extra=, so LogRecord does not declare them: read its __dict__.
    fields = ("stream_id", "expected_version", "actual_version", "attempt")
    assert {name: vars(record)[name] for name in fields} == {
        "stream_id": "counter-c1",
        "expected_version": "1",
        "actual_version": 2,
        "attempt": 1,
    }


def test_registry_is_required_to_know_event_types(store: EventStore) -> None:
    repo = CounterRepository(store, Registry(), snapshot_every=None)
    from eventstore import SerializationError  # noqa: PLC0415 - local to this check

    with pytest.raises(SerializationError):
        repo.create(Counter.open("c1", "x"))
    assert store.stream_version("counter-c1") == 0


def test_update_saves_the_new_aggregate_an_immutable_command_returns(
    store: EventStore,
) -> None:
    repo = TallyRepository(store, make_registry())
    repo.create(Tally("t1").increment(2))

    updated = repo.update("t1", lambda tally: tally.increment(3))
    assert (updated.count, updated.loaded_at, updated.unsaved) == (5, 2, ())
    assert (repo.get("t1").count, store.stream_version("tally-t1")) == (5, 2)


def test_a_sync_update_refuses_a_coroutine_command_before_any_io(
    repo: CounterRepository, store: EventStore
) -> None:
    repo.create(Counter.open("c1", "x"))

    async def increment(counter: Counter) -> None:
        counter.increment()

    class AsyncCall:
        async def __call__(self, counter: Counter) -> None:
            counter.increment()

    for command in (increment, AsyncCall()):
        with pytest.raises(InvalidArgumentTypeError, match="use AsyncRepository"):
            repo.update("c1", command)
    with pytest.raises(InvalidArgumentTypeError, match="must be callable"):
        repo.update("c1", "increment")  # type: ignore[arg-type]  # bad on purpose
    # A plain function that hands back a coroutine: refused, nothing saved.
    with pytest.raises(InvalidArgumentTypeError, match="returned an awaitable"):
        repo.update("c1", functools.partial(_call, increment))
    assert store.stream_version("counter-c1") == 1


def test_create_refuses_an_aggregate_that_is_not_new(repo: CounterRepository) -> None:
    repo.create(Counter.open("c1", "x"))
    loaded = repo.get("c1")
    loaded.increment()
    with pytest.raises(InvalidArgumentError, match="was loaded or saved at version 1"):
        repo.create(loaded)
    assert repo.get("c1").total == 0


def _call(function: Any, argument: object) -> object:
    """Call *function* on *argument*: a plain function whatever *function* is."""
    return function(argument)
