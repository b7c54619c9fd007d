"""
The test kit eventstore ships to host apps (install the ``test`` extra).

- `EventStoreContract`: the backend contract suite; subclass it and give it
  a ``store`` fixture to check a backend. `AsyncEventStoreContract` runs
  every one of its rules on an async backend.
- `check_registry`: one call that property-tests every registered type's
  round trip and every upcaster chain; `assert_roundtrip` for one object;
  `assert_schema_lock` to catch shape changes without a version bump.
- `strategy_for` / `registry_strategies`: hypothesis strategies for
  registered types.
- `assert_one_winner_per_round`: threads racing one expected version, round
  after round, with exactly one winner each time;
  `async_assert_one_winner_per_round` races tasks instead.
- `read_log` (`async_read_log`), `wait_for_position`
  (`async_wait_for_position`): wait, with a deadline, until the global
  log shows events (on PostgreSQL it may lag an append by a moment).
- pytest fixtures (``memory_store``, ``postgres_store``, …) from the plugin,
  active once eventstore is installed.

Names are imported on first use, so that the pytest plugin, which pytest
loads in every environment where eventstore is installed, does not need
hypothesis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eventstore.testing.concurrency import assert_one_winner_per_round
    from eventstore.testing.concurrency_async import async_assert_one_winner_per_round
    from eventstore.testing.contract import EventStoreContract, json_objects, read_log
    from eventstore.testing.contract_async import (
        AsyncEventStoreContract,
        async_read_log,
    )
    from eventstore.testing.logwait import wait_for_position
    from eventstore.testing.logwait_async import async_wait_for_position
    from eventstore.testing.serialization import (
        UPDATE_SCHEMA_LOCK_ENV,
        assert_roundtrip,
        assert_schema_lock,
        check_registry,
        load_examples,
    )
    from eventstore.testing.strategies import registry_strategies, strategy_for

_HOMES = {
    "assert_one_winner_per_round": "eventstore.testing.concurrency",
    "async_assert_one_winner_per_round": "eventstore.testing.concurrency_async",
    "AsyncEventStoreContract": "eventstore.testing.contract_async",
    "async_read_log": "eventstore.testing.contract_async",
    "async_wait_for_position": "eventstore.testing.logwait_async",
    "EventStoreContract": "eventstore.testing.contract",
    "json_objects": "eventstore.testing.contract",
    "read_log": "eventstore.testing.contract",
    "UPDATE_SCHEMA_LOCK_ENV": "eventstore.testing.serialization",
    "assert_roundtrip": "eventstore.testing.serialization",
    "assert_schema_lock": "eventstore.testing.serialization",
    "check_registry": "eventstore.testing.serialization",
    "load_examples": "eventstore.testing.serialization",
    "registry_strategies": "eventstore.testing.strategies",
    "strategy_for": "eventstore.testing.strategies",
    "wait_for_position": "eventstore.testing.logwait",
}

__all__ = [
    "UPDATE_SCHEMA_LOCK_ENV",
    "AsyncEventStoreContract",
    "EventStoreContract",
    "assert_one_winner_per_round",
    "assert_roundtrip",
    "assert_schema_lock",
    "async_assert_one_winner_per_round",
    "async_read_log",
    "async_wait_for_position",
    "check_registry",
    "json_objects",
    "load_examples",
    "read_log",
    "registry_strategies",
    "strategy_for",
    "wait_for_position",
]


if not TYPE_CHECKING:
    # Hidden from type checkers, which see the imports above: a module
    # __getattr__ returning Any made any misspelled name type-check.

    def __getattr__(name: str) -> Any:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(
                f"module 'eventstore.testing' has no attribute {name!r}"
            )
        return getattr(importlib.import_module(home), name)
