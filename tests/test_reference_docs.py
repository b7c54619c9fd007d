"""docs/reference.md is generated from the docstrings; it must match them."""

import importlib.util
from pathlib import Path
from types import ModuleType

import eventstore
from eventstore.testing import plugin

ROOT = Path(__file__).resolve().parent.parent


def load_generator() -> ModuleType:  # a script, loaded by path
    spec = importlib.util.spec_from_file_location(
        "generate_reference", ROOT / "docs" / "generate_reference.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_page_is_up_to_date() -> None:
    expected = load_generator().render()
    actual = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    assert actual == expected, (
        "docs/reference.md is stale: run python docs/generate_reference.py"
    )


def test_the_reference_covers_every_public_name() -> None:
    page = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    for name in eventstore.__all__:
        if not name.startswith("__"):
            assert f"`eventstore.{name}`" in page, name
    assert "`eventstore.postgres.PoolConfig`" in page
    assert "EVENTSTORE_POOL_MIN_SIZE" in page


def test_the_reference_covers_the_embedded_server_and_every_plugin_fixture() -> None:
    page = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    assert "`eventstore.testing.postgres_server.EmbeddedServer`" in page
    for method in ("start", "configure", "stop", "start_again", "restart", "close"):
        assert f"`EmbeddedServer.{method}`" in page, method
    fixtures = {
        "memory_store": "function",
        "async_memory_store": "function",
        "postgres_dsn": "session",
        "postgres_schema": "function",
        "postgres_store": "function",
        "async_postgres_store": "function",
    }
    # Every fixture the plugin defines is in this list, async ones included.
    assert {
        name
        for name, value in vars(plugin).items()
        if type(value).__name__ == "FixtureFunctionDefinition"
    } == set(fixtures)
    for name, scope in fixtures.items():
        section = page.split(f"### fixture `{name}`\n", 1)
        assert len(section) == 2, name
        assert f"Scope: `{scope}`" in section[1].split("\n### ", 1)[0], name
