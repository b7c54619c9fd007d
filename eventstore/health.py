"""Health reports: what `EventStore.health` returns, ready for a JSON endpoint."""

from __future__ import annotations

import enum
from typing import Any

import attrs

__all__ = ["HealthReport", "HealthStatus", "PoolMetrics"]

DEGRADED_UTILIZATION_PCT = 90.0
"""Pool utilisation above which a reachable store is degraded."""


class HealthStatus(enum.Enum):
    """Overall state of a store."""

    OK = "ok"
    """Reachable, with room in its pool."""

    DEGRADED = "degraded"
    """Reachable, but the pool is over 90% in use or requests are waiting."""

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
        error: Why the store is unavailable, with no secrets in it.
        partitions: How many hash partitions each of the store's tables has
            (1: one plain table), or ``None`` for a store without tables (in
            memory) or when unavailable.

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

    def to_dict(self) -> dict[str, Any]:
        """
        Return the report as a JSON-ready dict.

        Keys: ``status``, ``latency_ms``, ``schema_version``, ``partitions``,
        ``pool`` (a dict of `PoolMetrics` fields, or ``None``), and ``error``
        when set.
        """
        report: dict[str, Any] = {
            "status": self.status.value,
            "latency_ms": self.latency_ms,
            "schema_version": self.schema_version,
            "partitions": self.partitions,
            "pool": None if self.pool is None else self.pool.to_dict(),
        }
        if self.error is not None:
            report["error"] = self.error
        return report
