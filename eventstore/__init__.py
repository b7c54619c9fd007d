"""
eventstore: event streams for Python services, in memory or on PostgreSQL.

The public API is what ``__all__`` lists; every other module and name is
private. The PostgreSQL backend lives in `eventstore.postgres` (install the
``postgres`` extra), the test kit in `eventstore.testing`, and what a
backend of your own implements in `eventstore.backend`.
"""

from importlib.metadata import PackageNotFoundError, version

from eventstore._subscribing import (
    CatchUpProgress,
    Delivery,
    OnError,
    ParkedEvent,
    SubscriptionState,
    SubscriptionStatus,
)
from eventstore.aggregate import Aggregate, applies
from eventstore.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    ConcurrencyError,
    ConfigError,
    DuplicateEventError,
    EventStoreError,
    FutureSchemaVersionError,
    HandlerTransactionError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    PoolExhaustedError,
    RegistrationError,
    SerializationError,
    StoreClosedError,
    StoreTimeoutError,
    StoreUnavailableError,
    StreamNotFound,
    SubscriptionConflictError,
    SubscriptionFailedError,
    UnhandledEventError,
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
from eventstore.health import (
    HealthReport,
    HealthStatus,
    LogHolder,
    PoolMetrics,
    SubscriptionHealth,
)
from eventstore.memory import InMemoryEventStore
from eventstore.memory_async import AsyncInMemoryEventStore
from eventstore.repository import Repository, save_together
from eventstore.repository_async import AsyncRepository, async_save_together
from eventstore.retry import RetryPolicy
from eventstore.serialization import TRANSIENT, Payload, Registry, Upcaster
from eventstore.snapshots import LoadedStream, Snapshot
from eventstore.store import EventStore
from eventstore.store_async import AsyncEventStore
from eventstore.subscription import Subscription
from eventstore.subscription_async import AsyncSubscription

_DISTRIBUTION = "pg-eventstore"
"""The name on PyPI, where ``eventstore`` is an unrelated project; the import name stays."""

try:
    __version__ = version(_DISTRIBUTION)
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"

__all__ = [
    "TRANSIENT",
    "Aggregate",
    "AggregateAlreadyExists",
    "AggregateNotFound",
    "AppendRequest",
    "AppendResult",
    "AsyncEventStore",
    "AsyncInMemoryEventStore",
    "AsyncRepository",
    "AsyncSubscription",
    "CatchUpProgress",
    "ConcurrencyError",
    "ConfigError",
    "Delivery",
    "DuplicateEventError",
    "EventStore",
    "EventStoreError",
    "ExpectedVersion",
    "FutureSchemaVersionError",
    "HandlerTransactionError",
    "HealthReport",
    "HealthStatus",
    "InMemoryEventStore",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "LoadedStream",
    "LogHolder",
    "LogPosition",
    "NewEvent",
    "OnError",
    "ParkedEvent",
    "Payload",
    "PoolExhaustedError",
    "PoolMetrics",
    "RecordedEvent",
    "RegistrationError",
    "Registry",
    "Repository",
    "RetryPolicy",
    "SerializationError",
    "Snapshot",
    "StoreClosedError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "StreamNotFound",
    "Subscription",
    "SubscriptionConflictError",
    "SubscriptionFailedError",
    "SubscriptionHealth",
    "SubscriptionState",
    "SubscriptionStatus",
    "UnhandledEventError",
    "UnknownTypeError",
    "Upcaster",
    "__version__",
    "applies",
    "async_save_together",
    "save_together",
]
