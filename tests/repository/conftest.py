from collections.abc import Iterator

import pytest

from eventstore import EventStore, InMemoryEventStore

BACKENDS = ["memory", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Iterator[EventStore]:
    if request.param == "memory":
        with InMemoryEventStore() as memory:
            yield memory
    else:
        yield request.getfixturevalue("postgres_store")
