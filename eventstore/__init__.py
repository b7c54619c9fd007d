"""
eventstore: event streams for Python services, in memory or on PostgreSQL.

The public API is what ``__all__`` lists; every other module and name is
private. The PostgreSQL backend lives in `eventstore.postgres` (install the
``postgres`` extra), the test kit in `eventstore.testing`.
"""

from importlib.metadata import PackageNotFoundError, version

from eventstore.errors import (
    AggregateNotFound,
    ConcurrencyError,
    ConfigError,
    DuplicateEventError,
    EventStoreError,
    FutureSchemaVersionError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    PoolExhaustedError,
    RegistrationError,
    SerializationError,
    StoreClosedError,
    StoreTimeoutError,
    StoreUnavailableError,
    StreamNotFound,
    UnknownTypeError,
)
from eventstore.events import (
    AppendRequest,
    AppendResult,
    ExpectedVersion,
    LogPosition,
    NewEvent,
    RecordedEvent,
)
from eventstore.health import HealthReport, HealthStatus, PoolMetrics
from eventstore.memory import InMemoryEventStore
from eventstore.snapshots import LoadedStream, Snapshot
from eventstore.store import EventStore

try:
    __version__ = version("eventstore")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"

__all__ = [
    "AggregateNotFound",
    "AppendRequest",
    "AppendResult",
    "ConcurrencyError",
    "ConfigError",
    "DuplicateEventError",
    "EventStore",
    "EventStoreError",
    "ExpectedVersion",
    "FutureSchemaVersionError",
    "HealthReport",
    "HealthStatus",
    "InMemoryEventStore",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "LoadedStream",
    "LogPosition",
    "NewEvent",
    "PoolExhaustedError",
    "PoolMetrics",
    "RecordedEvent",
    "RegistrationError",
    "SerializationError",
    "Snapshot",
    "StoreClosedError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "StreamNotFound",
    "UnknownTypeError",
    "__version__",
]
