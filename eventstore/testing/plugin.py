"""
The pytest plugin of eventstore, registered through the ``pytest11`` entry point.

Installing eventstore makes its fixtures available to every test suite in the
environment, with no ``conftest.py`` needed:

- ``memory_store``: a fresh `InMemoryEventStore` per test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eventstore.memory import InMemoryEventStore


@pytest.fixture
def memory_store() -> Iterator[InMemoryEventStore]:
    """Give the test a fresh in-memory store, closed afterwards."""
    with InMemoryEventStore() as store:
        yield store
