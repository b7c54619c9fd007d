from collections.abc import AsyncIterator, Iterator

import pytest

from eventstore import AsyncInMemoryEventStore, InMemoryEventStore
from eventstore.testing import AsyncEventStoreContract, EventStoreContract


class TestInMemory(EventStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[InMemoryEventStore]:
        with InMemoryEventStore() as store:
            yield store


class TestAsyncInMemory(AsyncEventStoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[AsyncInMemoryEventStore]:
        async with AsyncInMemoryEventStore() as store:
            yield store
