"""The examples in docstrings (``>>>``) run, so the reference cannot show wrong code."""

import doctest
import importlib
import pkgutil

import pytest

import eventstore

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(eventstore.__path__, prefix="eventstore.")
    if not info.name.startswith("eventstore.testing.plugin")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS, raise_on_error=False, verbose=False
    )
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_the_docstrings_have_examples() -> None:
    attempted = sum(
        doctest.testmod(
            importlib.import_module(name), optionflags=doctest.ELLIPSIS
        ).attempted
        for name in MODULES
    )
    assert attempted >= 20
