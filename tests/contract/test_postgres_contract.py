import pytest

from eventstore.postgres import PostgresEventStore
from eventstore.testing import EventStoreContract

pytestmark = pytest.mark.postgres


class TestPostgres(EventStoreContract):
    @pytest.fixture
    def store(self, postgres_store: PostgresEventStore) -> PostgresEventStore:
        return postgres_store
