"""A backend written against the public backend interface alone passes the whole contract."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventstore.testing import EventStoreContract
from tests.backend.list_store import ListStore


class TestListStore(EventStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[ListStore]:
        with ListStore() as store:
            yield store


def test_the_backend_imports_no_private_module_of_eventstore() -> None:
    tree = ast.parse(Path(__file__).with_name("list_store.py").read_text("utf-8"))
    modules = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    ours = {module for module in modules if module.startswith("eventstore")}
    assert ours == {"eventstore", "eventstore.backend"}
