"""Fixtures shared by the PostgreSQL backend's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from eventstore.postgres import PostgresEventStore


@pytest.fixture
def store_factory(
    postgres_dsn: str, postgres_schema: str
) -> Iterator[Callable[..., PostgresEventStore]]:
    """Make stores on the test's schema (not migrated), on *dsn* if given; all closed after the test."""
    stores: list[PostgresEventStore] = []

    def make(dsn: str = postgres_dsn, **options: Any) -> PostgresEventStore:
        store = PostgresEventStore(dsn, schema=postgres_schema, **options)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
