"""
The PostgreSQL backend: `PostgresEventStore` and its pool settings.

Reached by its module path (``from eventstore.postgres import
PostgresEventStore``) so that the core package never imports psycopg.
"""

from eventstore.postgres.config import PoolConfig, PoolConfigWarning
from eventstore.postgres.store import PostgresEventStore

__all__ = ["PoolConfig", "PoolConfigWarning", "PostgresEventStore"]
