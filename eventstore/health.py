"""Health reports: what `EventStore.health` returns, ready for a JSON endpoint."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import attrs

__all__ = [
    "HealthReport",
    "HealthStatus",
    "LogHolder",
    "PoolMetrics",
    "SubscriptionHealth",
]

DEGRADED_UTILIZATION_PCT = 90.0
"""Pool utilisation above which a reachable store is degraded."""


class HealthStatus(enum.Enum):
    """Overall state of a store."""

    OK = "ok"
    """Reachable, with room in its pool."""

    DEGRADED = "degraded"
    """Reachable, but the pool is over 90% in use or requests are waiting, or
    the schema is at another version than the code's (``error`` says which)."""

    UNAVAILABLE = "unavailable"
    """Not reachable, or closed."""


@attrs.frozen
class PoolMetrics:
    """
    Connection pool figures at the time of a health check.

    Attributes:
        min_size: Configured minimum connections.
        max_size: Configured maximum connections.
        size: Connections open now (in use plus idle).
        available: Idle connections ready to hand out.
        in_use: Connections lent to callers.
        waiting: Requests queued for a connection.
        utilization_pct: ``in_use / max_size`` as a percentage.
        timeouts: Requests that gave up waiting since the pool opened.
    """

    min_size: int
    max_size: int
    size: int
    available: int
    in_use: int
    waiting: int
    utilization_pct: float
    timeouts: int

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as a JSON-ready dict."""
        return attrs.asdict(self)

    @property
    def status(self) -> HealthStatus:
        """Degraded when over `DEGRADED_UTILIZATION_PCT` in use or requests wait, else ok."""
        if self.utilization_pct > DEGRADED_UTILIZATION_PCT or self.waiting > 0:
            return HealthStatus.DEGRADED
        return HealthStatus.OK


@attrs.frozen
class LogHolder:
    """
    The open transaction that holds the global log back (PostgreSQL).

    Events committed after it started are not in `read_all`, nor delivered
    to subscriptions, until it ends: the log never lets a reader pass an
    event that could still commit before it. A session left "idle in
    transaction" holds it back for as long as it stays open.

    Attributes:
        pid: Its backend's process id (``pg_terminate_backend`` ends it).
        database: Its database (a transaction anywhere on the server holds
            the log back).
        application_name: The ``application_name`` of its session.
        state: Its session's state, e.g. ``"idle in transaction"``;
            ``None`` for a session of another role, unless the store's role
            has ``pg_read_all_stats`` (PostgreSQL shows it only then).
        xact_start: When its transaction started; ``None`` as for *state*.
    """

    pid: int
    database: str | None
    application_name: str
    state: str | None
    xact_start: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict (the start as ISO 8601)."""
        fields = attrs.asdict(self)
        if self.xact_start is not None:
            fields["xact_start"] = self.xact_start.isoformat()
        return fields


@attrs.frozen
class SubscriptionHealth:
    """
    A subscription's checkpoint as the store keeps it, for `HealthReport.subscriptions`.

    Attributes:
        name: The subscription.
        member: ``""``, or ``"i/n"`` for a member of a consumer group.
        position: Its checkpoint, as `LogPosition`'s text.
        updated_at: When the checkpoint last moved.
        parked: Events it has parked.
    """

    name: str
    member: str
    position: str
    updated_at: datetime
    parked: int

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict."""
        fields = attrs.asdict(self)
        fields["updated_at"] = self.updated_at.isoformat()
        return fields


@attrs.frozen
class HealthReport:
    """
    The result of `EventStore.health`.

    Attributes:
        status: ok, degraded or unavailable.
        latency_ms: Round-trip time of a trivial query, or ``None`` when
            unavailable.
        schema_version: The store's applied schema migration, or ``None`` for
            a store without one (in memory) or when unavailable.
        pool: Pool figures, or ``None`` for a store without a pool.
        error: Why the store is unavailable or degraded, with no secrets in it.
        partitions: How many hash partitions each of the store's tables has
            (1: one plain table), or ``None`` for a store without tables (in
            memory) or when unavailable.
        subscriptions: The checkpoints the store keeps (PostgreSQL).
        log_held_by: The transaction holding the global log back, when one
            does (PostgreSQL).

    Example:
        >>> HealthReport(HealthStatus.OK, 0.4, 3, None).to_dict()["status"]
        'ok'
    """

    status: HealthStatus
    latency_ms: float | None
    schema_version: int | None
    pool: PoolMetrics | None = None
    error: str | None = None
    partitions: int | None = None
    subscriptions: tuple[SubscriptionHealth, ...] = ()
    log_held_by: LogHolder | None = None

    def to_dict(self) -> dict[str, Any]:
        """
        Return the report as a JSON-ready dict.

        Keys: ``status``, ``latency_ms``, ``schema_version``, ``partitions``,
        ``pool`` (a dict of `PoolMetrics` fields, or ``None``),
        ``subscriptions`` (a list of dicts), ``log_held_by`` (a dict, or
        ``None``), and ``error`` when set.
        """
        report: dict[str, Any] = {
            "status": self.status.value,
            "latency_ms": self.latency_ms,
            "schema_version": self.schema_version,
            "partitions": self.partitions,
            "pool": None if self.pool is None else self.pool.to_dict(),
            "subscriptions": [item.to_dict() for item in self.subscriptions],
            "log_held_by": None
            if self.log_held_by is None
            else self.log_held_by.to_dict(),
        }
        if self.error is not None:
            report["error"] = self.error
        return report
