from collections.abc import AsyncIterator, Iterator

import pytest

from eventstore.postgres import AsyncPostgresEventStore, PoolConfig, PostgresEventStore
from eventstore.testing import AsyncEventStoreContract, EventStoreContract

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


class TestAsyncPostgres(AsyncEventStoreContract):
    @pytest.fixture
    def store(
        self, async_postgres_store: AsyncPostgresEventStore
    ) -> AsyncPostgresEventStore:
        return async_postgres_store


class TestAsyncPostgresPartitioned(AsyncEventStoreContract):
    """The async contract on the hash-partitioned layout (schema v2, N = 8)."""

    @pytest.fixture
    async def store(
        self, postgres_dsn: str, postgres_schema: str
    ) -> AsyncIterator[AsyncPostgresEventStore]:
        store = AsyncPostgresEventStore(
            postgres_dsn,
            schema=postgres_schema,
            partitions=8,
            pool_config=PoolConfig(min_size=1, max_size=4, timeout=10.0),
        )
        try:
            await store.migrate()
            report = await store.health()
            assert report.partitions == 8
            yield store
        finally:
            await store.close()
