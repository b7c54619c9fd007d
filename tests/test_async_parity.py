"""Sync and async twins: the same methods and arguments, and the same results and errors."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from eventstore import (
    AppendRequest,
    AppendResult,
    AsyncEventStore,
    AsyncInMemoryEventStore,
    AsyncRepository,
    AsyncSubscription,
    EventStore,
    ExpectedVersion,
    InMemoryEventStore,
    LoadedStream,
    LogPosition,
    NewEvent,
    RecordedEvent,
    Repository,
    Snapshot,
    Subscription,
    async_save_together,
    save_together,
)
from eventstore.postgres import AsyncPostgresEventStore, PoolConfig, PostgresEventStore
from eventstore.testing import (
    AsyncEventStoreContract,
    EventStoreContract,
    async_read_log,
    read_log,
)
from tests.repository.domain import (
    AsyncCounterRepository,
    Counter,
    CounterRepository,
    make_registry,
)

TWINS = [
    (EventStore, AsyncEventStore),
    (InMemoryEventStore, AsyncInMemoryEventStore),
    (PostgresEventStore, AsyncPostgresEventStore),
    (Repository, AsyncRepository),
    (EventStoreContract, AsyncEventStoreContract),
    (Subscription, AsyncSubscription),
]


def _public(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if (not name.startswith("_") or name == "__init__") and name != "pytestmark"
    }


def _parameters(function: Any) -> list[tuple[str, Any, Any]]:
    signature = inspect.signature(function)
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


@pytest.mark.parametrize(("sync", "twin"), TWINS, ids=lambda cls: cls.__name__)
def test_twins_have_the_same_methods_and_arguments(sync: type, twin: type) -> None:
    sync_members, async_members = _public(sync), _public(twin)
    assert sorted(sync_members) == sorted(async_members)
    for name, member in sync_members.items():
        if callable(member) and not isinstance(member, type):
            assert _parameters(member) == _parameters(async_members[name]), name


def test_the_twin_functions_have_the_same_arguments() -> None:
    assert _parameters(save_together) == _parameters(async_save_together)
    assert _parameters(read_log) == _parameters(async_read_log)


def test_every_io_method_of_an_async_store_is_awaited_and_read_stream_iterates() -> (
    None
):
    for name in (
        "append",
        "append_many",
        "save_snapshot",
        "stream_version",
        "read_all",
        "load_snapshot",
        "load",
        "health",
        "close",
    ):
        assert inspect.iscoroutinefunction(getattr(AsyncEventStore, name)), name
    assert not inspect.iscoroutinefunction(AsyncEventStore.read_stream)


def _ids(count: int, seed: int) -> list[uuid.UUID]:
    return [uuid.UUID(int=seed * 1000 + n) for n in range(count)]


def _script() -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """Operations run, in order, on a sync store and on its async twin."""
    first = [NewEvent("opened", {"n": n}, event_id=i) for n, i in enumerate(_ids(3, 1))]
    second = [
        NewEvent("moved", {"to": "b"}, metadata={"by": "x"}, event_id=_ids(1, 2)[0])
    ]
    other = [NewEvent("other", {}, event_id=_ids(1, 3)[0])]
    return [
        ("append", ("s", first), {"expected_version": 0}),
        ("append", ("s", first), {"expected_version": 0}),  # a retry: same result
        ("append", ("s", second), {"expected_version": 0}),  # a conflict
        ("append", ("s", second), {"expected_version": 3}),
        ("append", ("s", [first[0]]), {}),  # a partial overlap: a duplicate
        ("append", ("", second), {}),  # bad input
        ("append", ("s", []), {}),
        ("append", ("s", second), {"expected_version": ExpectedVersion.EXISTS}),
        ("append_many", ([AppendRequest("a", other), AppendRequest("s", second)],), {}),
        ("append_many", ([AppendRequest("a", other), AppendRequest("s", second)],), {}),
        ("append_many", ([AppendRequest("b", other, expected_version=0)],), {}),
        ("stream_version", ("s",), {}),
        ("stream_version", ("nope",), {}),
        ("read_stream", ("s",), {}),
        ("read_stream", ("s",), {"backwards": True, "limit": 2}),
        ("read_stream", ("s",), {"from_version": 2, "to_version": 3}),
        ("read_stream", ("s",), {"limit": 0}),
        ("read_all", (), {"limit": 3}),
        ("save_snapshot", (Snapshot("s", 2, "counter", 1, {"total": 2}),), {}),
        ("save_snapshot", (Snapshot("s", 0, "counter", 1, {}),), {}),
        ("load_snapshot", ("s",), {}),
        ("load_snapshot", ("s",), {"max_version": 1}),
        ("load", ("s",), {}),
        ("load", ("s",), {"use_snapshot": False, "to_version": 3}),
        ("read_all", (), {"after": "1/2"}),
    ]


def _shape(value: Any, positions: dict[LogPosition, int]) -> Any:  # noqa: PLR0911  # one case per type
    """*value* with what two stores cannot share (clock, transaction ids) made comparable."""
    if isinstance(value, BaseException):
        return (type(value).__name__, str(value))
    if isinstance(value, LogPosition):
        return positions.setdefault(value, len(positions))
    if isinstance(value, RecordedEvent):
        return (
            value.stream_id,
            value.version,
            _shape(value.position, positions),
            value.type,
            value.data,
            value.metadata,
            value.event_id,
            value.schema_version,
        )
    if isinstance(value, AppendResult):
        return (
            value.stream_id,
            value.version,
            _shape(list(value.positions), positions),
        )
    if isinstance(value, Snapshot):
        return (
            value.stream_id,
            value.version,
            value.type,
            value.schema_version,
            value.state,
        )
    if isinstance(value, LoadedStream):
        return (
            _shape(value.snapshot, positions),
            _shape(list(value.events), positions),
            value.version,
        )
    if isinstance(value, list | tuple):
        return [_shape(item, positions) for item in value]
    return value


def _run_sync(store: EventStore) -> list[Any]:
    outcomes: list[Any] = []
    for name, args, kwargs in _script():
        try:
            result = getattr(store, name)(*args, **kwargs)
            if name == "read_stream":
                result = list(result)
        except Exception as exc:  # the outcome compared, whatever it is
            result = exc
        outcomes.append(result)
    return outcomes


async def _run_async(store: AsyncEventStore) -> list[Any]:
    outcomes: list[Any] = []
    for name, args, kwargs in _script():
        try:
            if name == "read_stream":
                result: Any = [e async for e in store.read_stream(*args, **kwargs)]
            else:
                result = await getattr(store, name)(*args, **kwargs)
        except Exception as exc:  # the outcome compared, whatever it is
            result = exc
        outcomes.append(result)
    return outcomes


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sync_store(backend: str, request: pytest.FixtureRequest) -> Iterator[EventStore]:
    if backend == "memory":
        with InMemoryEventStore() as memory:
            yield memory
        return
    yield request.getfixturevalue("postgres_store")


@pytest.fixture
async def async_store(
    backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[AsyncEventStore]:
    if backend == "memory":
        async with AsyncInMemoryEventStore() as memory:
            yield memory
        return
    dsn = request.getfixturevalue("postgres_dsn")
    schema = request.getfixturevalue("postgres_schema") + "_async"
    async with AsyncPostgresEventStore(
        dsn, schema=schema, pool_config=PoolConfig(min_size=1, max_size=2)
    ) as store:
        await store.migrate()
        yield store
        import psycopg  # noqa: PLC0415  # only the PostgreSQL case drops its schema

        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def test_the_same_operations_give_the_same_results_and_errors(
    sync_store: EventStore, async_store: AsyncEventStore
) -> None:
    sync_outcomes = _run_sync(sync_store)
    async_outcomes = await _run_async(async_store)
    sync_positions: dict[LogPosition, int] = {}
    async_positions: dict[LogPosition, int] = {}
    for step, (sync_outcome, async_outcome) in enumerate(
        zip(sync_outcomes, async_outcomes, strict=True)
    ):
        assert _shape(sync_outcome, sync_positions) == _shape(
            async_outcome, async_positions
        ), (step, _script()[step][0])
    errors = [o for o in sync_outcomes if isinstance(o, Exception)]
    assert len(errors) >= 6  # the script's refusals are in the comparison
    if isinstance(sync_store, InMemoryEventStore):
        # One process, one counter: even the log positions are the same.
        assert sync_positions == async_positions


async def test_the_repositories_give_the_same_aggregates(
    sync_store: EventStore, async_store: AsyncEventStore
) -> None:
    registry = make_registry()
    sync_repo = CounterRepository(sync_store, registry, snapshot_every=2)
    async_repo = AsyncCounterRepository(async_store, registry, snapshot_every=2)
    sync_repo.create(Counter.open("c", "hits"))
    await async_repo.create(Counter.open("c", "hits"))
    for _ in range(3):
        sync_repo.update("c", lambda counter: counter.increment())
        await async_repo.update("c", lambda counter: counter.increment())
    sync_counter, async_counter = sync_repo.get("c"), await async_repo.get("c")
    assert (
        (sync_counter.total, sync_counter.version)
        == (async_counter.total, async_counter.version)
        == (3, 4)
    )
    old_sync, old_async = (
        sync_repo.get("c", version=2),
        await async_repo.get("c", version=2),
    )
    assert old_sync.total == old_async.total == 1
    sync_snapshot = sync_store.load_snapshot("counter-c")
    async_snapshot = await async_store.load_snapshot("counter-c")
    assert sync_snapshot is not None
    assert async_snapshot is not None
    assert (sync_snapshot.version, sync_snapshot.state) == (
        async_snapshot.version,
        async_snapshot.state,
    )
