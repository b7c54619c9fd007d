from collections.abc import Iterator

import pytest

from eventstore.postgres import PoolConfig, PostgresEventStore
from eventstore.testing import EventStoreContract

pytestmark = pytest.mark.postgres


class TestPostgres(EventStoreContract):
    @pytest.fixture
    def store(self, postgres_store: PostgresEventStore) -> PostgresEventStore:
        return postgres_store


class TestPostgresPartitioned(EventStoreContract):
    """The same contract on the hash-partitioned layout (schema v2, N = 8)."""

    @pytest.fixture
    def store(
        self, postgres_dsn: str, postgres_schema: str
    ) -> Iterator[PostgresEventStore]:
        store = PostgresEventStore(
            postgres_dsn,
            schema=postgres_schema,
            partitions=8,
            pool_config=PoolConfig(min_size=1, max_size=4, timeout=10.0),
        )
        try:
            store.migrate()
            assert store.health().partitions == 8
            yield store
        finally:
            store.close()
