"""The examples in docstrings (``>>>``) run, so the reference cannot show wrong code."""

import ast
import asyncio
import doctest
import importlib
import inspect
import pkgutil
from types import CodeType, ModuleType
from typing import Any

import pytest

import eventstore

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(eventstore.__path__, prefix="eventstore.")
    if not info.name.startswith("eventstore.testing.plugin")
)


def _run_examples(module: ModuleType) -> doctest.TestResults:
    """
    Run *module*'s examples; those of an ``*_async`` module may ``await`` at top level.

    doctest runs each example with the builtin ``exec``; an example compiled
    with top-level await is a coroutine instead, run here to its end on one
    loop per module (so a store made in one example works in the next).
    """
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS, verbose=False)
    if not module.__name__.endswith("_async"):
        for test in doctest.DocTestFinder().find(module):
            runner.run(test)
        return runner.summarize(verbose=False)
    loop = asyncio.new_event_loop()

    def run(code: CodeType, globs: dict[str, Any]) -> None:
        if code.co_flags & inspect.CO_COROUTINE:
            loop.run_until_complete(eval(code, globs))  # noqa: S307  # our own examples
        else:
            exec(code, globs)  # noqa: S102  # our own examples

    doctest.exec = run  # type: ignore[attr-defined]  # looked up before the builtin
    try:
        for test in doctest.DocTestFinder().find(module):
            runner.run(test, compileflags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    finally:
        del doctest.exec  # type: ignore[attr-defined]
        loop.close()
    return runner.summarize(verbose=False)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = _run_examples(importlib.import_module(name))
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_the_docstrings_have_examples() -> None:
    attempted = sum(
        _run_examples(importlib.import_module(name)).attempted for name in MODULES
    )
    assert attempted >= 20


def test_async_examples_really_run() -> None:
    store_async = importlib.import_module("eventstore.store_async")
    assert _run_examples(store_async).attempted >= 3
