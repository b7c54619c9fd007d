"""
Generate eventstore's sync modules from their async sources.

Each pair of I/O shells has one source of truth, the ``*_async.py`` module;
its sync twin is generated from it, as psycopg generates its sync code from
its async code. The conversion is unasync's token rewrite (``async def`` ->
``def``, ``await x`` -> ``x``, ``async with``/``async for`` -> ``with``/``for``,
``AsyncIterator`` -> ``Iterator``…) with our own names added, then:

- a block ``if True:  # ASYNC`` … ``else:`` keeps only its ``else`` body (and
  one without ``else`` goes), for
  the few places where the two sides differ in more than keywords (a
  ``read_stream`` whose first page the sync side reads at the call); the
  first line of that body carries ``# type: ignore[unreachable]`` for mypy
  on the async side, and loses it;
- docstrings and comments get the same renames, and lose ``await``, so the
  sync reference reads as sync code;
- ruff sorts the imports, drops the ones only the async side used, and
  formats the result.

Usage::

    python tools/async_to_sync.py          # rewrite every generated module
    python tools/async_to_sync.py --check  # exit 1 if one is stale (CI)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import unasync

ROOT = Path(__file__).resolve().parent.parent

PAIRS: dict[str, str] = {
    "eventstore/store_async.py": "eventstore/store.py",
    "eventstore/memory_async.py": "eventstore/memory.py",
    "eventstore/repository_async.py": "eventstore/repository.py",
    "eventstore/postgres/_connections_async.py": "eventstore/postgres/_connections.py",
    "eventstore/postgres/_queries_async.py": "eventstore/postgres/_queries.py",
    "eventstore/postgres/_subscriptions_async.py": "eventstore/postgres/_subscriptions.py",
    "eventstore/postgres/store_async.py": "eventstore/postgres/store.py",
    "eventstore/testing/contract_async.py": "eventstore/testing/contract.py",
    "eventstore/testing/logwait_async.py": "eventstore/testing/logwait.py",
    "eventstore/subscription_async.py": "eventstore/subscription.py",
}
"""Async source -> generated sync module, relative to the project root."""

RENAMES: dict[str, str] = {
    # our classes and functions
    "AsyncEventStore": "EventStore",
    "AsyncInMemoryEventStore": "InMemoryEventStore",
    "AsyncPostgresEventStore": "PostgresEventStore",
    "AsyncRepository": "Repository",
    "AsyncConnections": "Connections",
    "AsyncStorePool": "StorePool",
    "AsyncStoreConnection": "StoreConnection",
    "AsyncServerProbe": "ServerProbe",
    "AsyncIdleCheck": "IdleCheck",
    "AsyncCutOff": "CutOff",
    "AsyncEventStoreContract": "EventStoreContract",
    "AsyncWork": "Work",
    "AsyncAttempt": "Attempt",
    "acall": "call",
    "async_save_together": "save_together",
    "async_read_log": "read_log",
    "async_wait_for_position": "wait_for_position",
    "async_assert_one_winner_per_round": "assert_one_winner_per_round",
    # our modules
    "store_async": "store",
    "memory_async": "memory",
    "repository_async": "repository",
    "_connections_async": "_connections",
    "_queries_async": "_queries",
    "_subscriptions_async": "_subscriptions",
    "AsyncSubscriptionHooks": "SubscriptionHooks",
    "concurrency_async": "concurrency",
    "contract_async": "contract",
    "logwait_async": "logwait",
    "subscription_async": "subscription",
    "AsyncSubscription": "Subscription",
    "AsyncSubscriptionLock": "SubscriptionLock",
    "AsyncTransactionWork": "TransactionWork",
    "AsyncLogListener": "LogListener",
    "AsyncListener": "Listener",
    "AsyncLocalLock": "LocalLock",
    "AsyncAdvisoryLock": "AdvisoryLock",
    # psycopg, psycopg_pool and the standard library
    "AsyncConnectionPool": "ConnectionPool",
    "AsyncConnection": "Connection",
    "AsyncCursor": "Cursor",
    "AbstractAsyncContextManager": "AbstractContextManager",
    "aclose": "close",
    "anext": "next",
    "aiter": "iter",
}
"""Names unasync does not know already, async -> sync."""

_NAME = re.compile(r"\b(" + "|".join(sorted(RENAMES, key=len, reverse=True)) + r")\b")
_PROSE = [
    (re.compile(r"\bawait (?=\S)"), ""),
    (re.compile(r"\basync (with|for|def)\b"), r"\1"),
    (re.compile(r"\ban async iterator\b"), "an iterator"),
    (re.compile(r"\basync iterator\b"), "iterator"),
    (re.compile(r"\bAsync(Iterator|Iterable|Generator)\b"), r"\1"),
    (re.compile(r"__a(enter|exit|iter|next)__"), r"__\1__"),
    (re.compile(r"\bpytest_asyncio\.fixture\b"), "pytest.fixture"),
]
ASYNC_ONLY_PROSE = [
    # AsyncRepository.update also awaits a command that is a coroutine function.
    r"\s+A\s+coroutine\s+function\s+is\s+awaited\.",
]
"""Sentences of the async docstrings that the sync ones leave out (regexes)."""

_ASYNC_BLOCK = re.compile(r"^(?P<indent>[ ]*)if True:  # ASYNC\s*$")

HEADER = (
    "# Generated from {source} by tools/async_to_sync.py: edit that file, not\n"
    "# this one, then run `python tools/async_to_sync.py`.\n"
)


def keep_sync_branches(text: str) -> str:
    """Replace each ``if True:  # ASYNC`` block by its ``else`` body, dedented, if any."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    index = 0
    while index < len(lines):
        match = _ASYNC_BLOCK.match(lines[index])
        if match is None:
            out.append(lines[index])
            index += 1
            continue
        indent = match["indent"]
        index += 1
        index = _skip_body(lines, index, indent)
        if index >= len(lines) or lines[index].rstrip() != f"{indent}else:":
            continue  # async only: the sync side has nothing in its place
        index += 1
        body_end = _skip_body(lines, index, indent)
        out.extend(_dedent(line) for line in lines[index:body_end])
        index = body_end
    return "".join(out)


def _skip_body(lines: list[str], index: int, indent: str) -> int:
    """Return the index of the first line after the block body that starts at *index*."""
    while index < len(lines):
        line = lines[index]
        if line.strip() and not line.startswith(indent + " "):
            break
        index += 1
    return index


def _dedent(line: str) -> str:
    # mypy finds the else branch of `if True:` unreachable on the async side.
    line = line.replace("  # type: ignore[unreachable]", "")
    return line[4:] if line.startswith("    ") else line


def rename_prose(text: str) -> str:
    """Apply the renames to docstrings and comments, and drop ``await``."""
    for sentence in ASYNC_ONLY_PROSE:
        text = re.sub(sentence, "", text)
    for pattern, replacement in _PROSE:
        text = pattern.sub(replacement, text)
    return _NAME.sub(lambda match: RENAMES[match[1]], text)


def convert(source_path: str, text: str) -> str:
    """Return the sync module generated from the async module *text*."""
    text = keep_sync_branches(text)
    with tempfile.TemporaryDirectory() as tmp:
        async_file = Path(tmp, "_async", "module.py")
        async_file.parent.mkdir()
        async_file.write_text(text, encoding="utf-8")
        rule = unasync.Rule("/_async/", "/_sync/", additional_replacements=RENAMES)
        unasync.unasync_files([str(async_file)], rules=[rule])
        text = Path(tmp, "_sync", "module.py").read_text(encoding="utf-8")
    text = rename_prose(text)
    text = HEADER.format(source=Path(source_path).name) + text
    target = PAIRS[source_path]
    text = _ruff(
        ["check", "--fix", "--select", "I,F401,RUF022", "--exit-zero", "--quiet"],
        target,
        text,
    )
    return _ruff(["format", "--quiet"], target, text)


def _ruff(args: list[str], path: str, text: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", path, "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return done.stdout


def main() -> int:
    """Write (or, with ``--check``, compare) every generated module."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument(
        "--check", action="store_true", help="fail if a generated module is stale"
    )
    args = parser.parse_args()
    stale = []
    for source, target in PAIRS.items():
        generated = convert(source, (ROOT / source).read_text(encoding="utf-8"))
        current = ROOT / target
        if current.exists() and current.read_text(encoding="utf-8") == generated:
            continue
        if args.check:
            stale.append(target)
        else:
            current.write_text(generated, encoding="utf-8")
            print(f"generated {target} from {source}")
    if stale:
        print(
            "stale generated module(s), run `python tools/async_to_sync.py`: "
            + ", ".join(stale),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
