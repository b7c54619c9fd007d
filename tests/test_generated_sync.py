"""The sync modules are generated from their async sources, and are up to date."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "async_to_sync", ROOT / "tools" / "async_to_sync.py"
)
assert _spec is not None
assert _spec.loader is not None
async_to_sync = importlib.util.module_from_spec(_spec)
sys.modules["async_to_sync"] = async_to_sync
_spec.loader.exec_module(async_to_sync)


@pytest.mark.parametrize(("source", "target"), sorted(async_to_sync.PAIRS.items()))
def test_each_generated_module_matches_its_async_source(source, target):
    generated = async_to_sync.convert(source, (ROOT / source).read_text("utf-8"))
    assert (ROOT / target).read_text("utf-8") == generated, (
        f"{target} is stale: run python tools/async_to_sync.py"
    )


def test_an_async_block_keeps_only_its_sync_branch():
    text = (
        "def f():\n"
        "    if True:  # ASYNC\n"
        "        a = 1\n"
        "    else:\n"
        "        b = 2  # type: ignore[unreachable]\n"
        "        c = 3\n"
        "    return 4\n"
    )
    assert async_to_sync.keep_sync_branches(text) == (
        "def f():\n    b = 2\n    c = 3\n    return 4\n"
    )


def test_an_async_block_without_else_leaves_nothing():
    text = "def f():\n    if True:  # ASYNC\n        a = 1\n\n    return 4\n"
    assert async_to_sync.keep_sync_branches(text) == "def f():\n    return 4\n"


def test_prose_reads_as_sync():
    text = (
        ">>> async with AsyncInMemoryEventStore() as store:\n"
        "...     result = await store.append('s', events)\n"
        "An async iterator over the events, not by the first ``anext()``."
    )
    assert async_to_sync.rename_prose(text) == (
        ">>> with InMemoryEventStore() as store:\n"
        "...     result = store.append('s', events)\n"
        "An iterator over the events, not by the first ``next()``."
    )


def test_every_generated_module_says_where_it_comes_from():
    for source, target in async_to_sync.PAIRS.items():
        first_line = (ROOT / target).read_text("utf-8").splitlines()[0]
        assert Path(source).name in first_line
        assert "Generated" in first_line
