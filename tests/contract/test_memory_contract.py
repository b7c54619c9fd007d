from collections.abc import Iterator

import pytest

from eventstore import InMemoryEventStore
from eventstore.testing import EventStoreContract


class TestInMemory(EventStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[InMemoryEventStore]:
        with InMemoryEventStore() as store:
            yield store
