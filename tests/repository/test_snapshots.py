import itertools
import logging
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import (
    AggregateNotFound,
    EventStore,
    InMemoryEventStore,
    RecordedEvent,
    Snapshot,
)
from tests.repository.domain import Counter, CounterRepository, make_registry

commands = st.lists(
    st.one_of(
        st.integers(min_value=1, max_value=1000).map(lambda n: ("increment", n)),
        st.text(
            st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
            max_size=12,
        ).map(lambda name: ("rename", name)),
    ),
    max_size=40,
)
_ids = itertools.count()
batch_sizes = st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=40)


@pytest.mark.parametrize("every", [1, 7, 100, None])
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(script=commands, batches=batch_sizes)
def test_snapshot_plus_tail_equals_full_replay_equals_the_live_object(
    store: EventStore,
    every: int | None,
    script: list[tuple[str, object]],
    batches: list[int],
) -> None:
    registry = make_registry()
    repo = CounterRepository(store, registry, snapshot_every=every)
    replay = CounterRepository(store, registry, snapshot_every=None)
    counter_id = f"c-{next(_ids)}"
    live = Counter.open(counter_id, "start")
    repo.create(live)
    # Save in batches of varying size, so saves cross snapshot boundaries at odd places.
    sizes = itertools.cycle(batches)
    position = 0
    while position < len(script):
        size = next(sizes)
        for name, argument in script[position : position + size]:
            if name == "increment":
                live.increment(argument)  # type: ignore[arg-type]  # the strategy pairs names and types
            else:
                live.rename(argument)  # type: ignore[arg-type]  # the strategy pairs names and types
        repo.save(live)
        position += size
    via_snapshot = repo.get(counter_id)
    via_replay = replay.get(counter_id)
    assert via_snapshot == via_replay == live
    assert via_snapshot.version == live.version == len(script) + 1
    if every is not None and live.version >= every:
        snapshot = store.load_snapshot(repo.stream_id(counter_id))
        assert snapshot is not None
        assert snapshot.version > live.version - every - 9


def test_a_snapshot_is_taken_after_the_save_that_crosses_the_boundary(
    store: EventStore,
) -> None:
    repo = CounterRepository(store, make_registry(), snapshot_every=5)
    counter = Counter.open("c1", "x")
    for _ in range(3):
        counter.increment()
    repo.create(counter)  # version 4: no snapshot yet
    assert store.load_snapshot("counter-c1") is None
    counter.increment()
    counter.increment()
    repo.save(counter)  # version 6: crossed 5
    snapshot = store.load_snapshot("counter-c1")
    assert snapshot is not None
    assert (snapshot.version, snapshot.type, snapshot.schema_version) == (
        6,
        "counter",
        1,
    )
    assert snapshot.state["total"] == 5
    assert "pending" not in snapshot.state
    assert "_pending" not in snapshot.state


def _history(store: EventStore, events: int = 30) -> CounterRepository:
    repo = CounterRepository(store, make_registry(), snapshot_every=10)
    counter = Counter.open("c1", "x")
    for n in range(events - 1):
        counter.increment(n + 1)
    repo.create(counter)
    return repo


@pytest.mark.parametrize(
    ("snapshot", "reason"),
    [
        (Snapshot("counter-c1", 30, "counter", 1, {"garbage": True}), "corrupt"),
        (Snapshot("counter-c1", 30, "counter", 99, {"id": "c1"}), "schema version 99"),
        (Snapshot("counter-c1", 30, "counter.v0", 1, {"id": "c1"}), "unknown type"),
        (
            Snapshot("counter-c1", 30, "counter.incremented", 1, {"amount": 1}),
            "not a Counter",
        ),
    ],
    ids=["corrupt", "newer-schema", "unknown-type", "wrong-type"],
)
def test_an_unusable_snapshot_falls_back_to_replay_with_one_warning(
    store: EventStore, caplog: pytest.LogCaptureFixture, snapshot: Snapshot, reason: str
) -> None:
    repo = _history(store)
    expected = CounterRepository(store, make_registry(), snapshot_every=None).get("c1")
    store.save_snapshot(snapshot)
    with caplog.at_level(logging.WARNING, logger="eventstore.repository"):
        loaded = repo.get("c1")
    assert loaded == expected
    assert loaded.total == sum(range(1, 30))
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert (
        "ignoring snapshot of stream 'counter-c1' at version 30" in record.getMessage()
    )
    assert "replaying its events" in record.getMessage()


def test_a_failing_snapshot_never_fails_the_save(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenSnapshots(CounterRepository):
        def snapshot_state(self, aggregate: Counter) -> object:
            raise RuntimeError("the snapshot state cannot be computed")

    repo = BrokenSnapshots(store, make_registry(), snapshot_every=2)
    counter = Counter.open("c1", "x")
    counter.increment()
    with caplog.at_level(logging.WARNING, logger="eventstore.repository"):
        result = repo.create(counter)
    assert result is not None
    assert result.version == 2
    assert store.load_snapshot("counter-c1") is None
    (record,) = caplog.records
    assert "could not snapshot stream 'counter-c1' at version 2" in record.getMessage()
    assert repo.get("c1").total == 1


class CountingStore(InMemoryEventStore):
    """Counts the events every read hands out (`load` reads through `_read_stream` here)."""

    def __init__(self) -> None:
        super().__init__()
        self.events_read = 0

    def _read_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        backwards: bool,
        limit: int | None,
    ) -> Iterator[RecordedEvent]:
        for event in super()._read_stream(
            stream_id, from_version, to_version, backwards, limit
        ):
            self.events_read += 1
            yield event


def test_loading_a_long_history_reads_at_most_one_snapshot_interval_of_events() -> None:
    store = CountingStore()
    repo = CounterRepository(store, make_registry(), snapshot_every=100)
    counter = Counter.open("long", "x")
    repo.create(counter)
    for size in [101] * 99 + [50]:
        for _ in range(size):
            counter.increment()
        repo.save(counter)
    assert counter.version == 10_050
    store.events_read = 0
    loaded = repo.get("long")
    assert loaded == counter
    assert store.events_read <= 100
    assert store.events_read == 50


def test_a_restore_hook_that_fails_falls_back_to_replay(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    class OldShapes(CounterRepository):
        def restore_snapshot(self, state: object, aggregate_id: str) -> Counter:
            raise KeyError("an older shape of the state")

    repo = OldShapes(store, make_registry(), snapshot_every=2)
    counter = Counter.open("c1", "x")
    counter.increment(4)
    repo.create(counter)
    assert store.load_snapshot("counter-c1") is not None
    with caplog.at_level(logging.WARNING, logger="eventstore.repository"):
        loaded = repo.get("c1")
    assert (loaded.total, loaded.version) == (4, 2)
    (record,) = caplog.records
    assert "KeyError" in record.getMessage()
    assert "replaying its events" in record.getMessage()


def test_a_snapshot_beyond_the_streams_end_is_never_loaded(store: EventStore) -> None:
    repo = CounterRepository(store, make_registry(), snapshot_every=None)
    repo.create(Counter.open("c1", "x"))
    registry = make_registry()
    # Saved for versions the streams never reached (by hand: a repository
    # snapshots only versions it has just written).
    store.save_snapshot(
        registry.to_snapshot("counter-c1", 5, Counter(id="c1", name="ghost"))
    )
    store.save_snapshot(
        registry.to_snapshot("counter-c9", 3, Counter(id="c9", name="ghost"))
    )
    with_snapshots = CounterRepository(store, make_registry(), snapshot_every=10)
    loaded = with_snapshots.get("c1")
    assert (loaded.name, loaded.version) == ("x", 1)
    loaded.increment()
    assert with_snapshots.save(loaded) is not None  # no conflict with version 5
    with pytest.raises(AggregateNotFound):
        with_snapshots.get("c9")
