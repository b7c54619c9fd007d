"""
The PostgreSQL backend: `PostgresEventStore`, its async twin `AsyncPostgresEventStore`, and their pool settings.

Reached by its module path (``from eventstore.postgres import
PostgresEventStore``) so that the core package never imports psycopg.
"""

# First, before anything imports psycopg bare: a missing driver names its extra.
from eventstore.postgres import _driver  # noqa: F401  # isort: skip
from eventstore.postgres.config import PoolConfig, PoolConfigWarning
from eventstore.postgres.store import PostgresEventStore
from eventstore.postgres.store_async import AsyncPostgresEventStore

__all__ = [
    "AsyncPostgresEventStore",
    "PoolConfig",
    "PoolConfigWarning",
    "PostgresEventStore",
]
