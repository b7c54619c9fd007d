from collections.abc import Iterator

import pytest

from eventstore import AsyncEventStore, EventStore, InMemoryEventStore

BACKENDS = ["memory", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Iterator[EventStore]:
    if request.param == "memory":
        with InMemoryEventStore() as memory:
            yield memory
    else:
        yield request.getfixturevalue("postgres_store")


@pytest.fixture(params=BACKENDS)
def async_store(request: pytest.FixtureRequest) -> AsyncEventStore:
    # A plain function: an async fixture cannot ask for another one by name.
    name = "async_memory_store" if request.param == "memory" else "async_postgres_store"
    store: AsyncEventStore = request.getfixturevalue(name)
    return store
