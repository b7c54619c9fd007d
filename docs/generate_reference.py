"""
Write docs/reference.md from the docstrings of the public API.

Run ``python docs/generate_reference.py`` after changing a public name or its
docstring; a test fails while the committed page differs from what this
script writes, so the reference cannot drift from the code.
"""

from __future__ import annotations

import ast
import enum
import importlib
import inspect
import itertools
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

MODULES = [
    ("eventstore", "The core: stores, events, errors, repositories, serialization."),
    ("eventstore.postgres", "The PostgreSQL backend (the `postgres` extra)."),
    (
        "eventstore.backend",
        "What a backend of your own implements and receives (see backends.md).",
    ),
    (
        "eventstore.serialization",
        "The serializer's own module (also re-exported by `eventstore`).",
    ),
    ("eventstore.testing", "The test kit (the `test` extra) and its pytest plugin."),
    (
        "eventstore.testing.postgres_server",
        "Throwaway PostgreSQL servers for tests and examples (the `test` and"
        " `postgres` extras).",
    ),
]
PLUGIN = (
    "eventstore.testing.plugin",
    "The pytest plugin, registered through the `pytest11` entry point: installing"
    " eventstore gives every test suite in the environment these fixtures, with no"
    " `conftest.py`. Request one by naming it as a test's argument.",
)
PAGE = Path(__file__).with_name("reference.md")


class _Shown:
    """A default value shown by name, e.g. ``time.sleep`` for ``<built-in function sleep>``."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _shown(value: Any) -> Any:
    """Return *value*, or a stand-in whose repr names it when its own repr is ``<…>``."""
    # An enum member as it is written, not as ``<Delivery.X: 'x'>``; a
    # sentinel enum with a repr of its own keeps it.
    if isinstance(value, enum.Enum) and type(value).__repr__ is enum.Enum.__repr__:
        return _Shown(f"{type(value).__qualname__}.{value.name}")
    if inspect.isclass(value):
        return _Shown(value.__qualname__)
    if inspect.isfunction(value) or inspect.isbuiltin(value):
        module = "" if value.__module__ == "builtins" else f"{value.__module__}."
        return _Shown(f"{module}{value.__qualname__}")
    if isinstance(value, tuple) and any(_shown(v) is not v for v in value):
        items = [repr(_shown(v)) for v in value]
        return _Shown(f"({', '.join(items)}{',' if len(items) == 1 else ''})")
    return value


def _signature(obj: Any) -> str:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return ""
    parameters = [
        parameter
        if parameter.default is inspect.Parameter.empty
        else parameter.replace(default=_shown(parameter.default))
        for parameter in signature.parameters.values()
    ]
    text = str(signature.replace(parameters=parameters))
    # A default whose repr is a bare object (a sentinel) tells the reader
    # nothing; give it a __repr__ instead (see Repository's _ClassDefault).
    if re.search(r"<[\w.]+ object\b", text):
        raise SystemExit(f"{obj!r}: a default renders as an object repr: {text}")
    # Other reprs may carry an address; drop it so the page is the same on
    # every run.
    return re.sub(r" at 0x[0-9a-f]+", "", text)


def _doc(obj: Any) -> str:
    return inspect.getdoc(obj) or "(undocumented)"


def _member_docs(cls: type[enum.Enum]) -> dict[str, str]:
    """
    Return the docstrings of an enum's members, by name, read from its source.

    A string right after ``NAME = value`` in the class body documents the
    member (attrs and Sphinx read it so); Python keeps no trace of it.
    """
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    (node,) = ast.parse(source).body
    if not isinstance(node, ast.ClassDef):
        return {}
    docs: dict[str, str] = {}
    for statement, following in itertools.pairwise(node.body):
        if (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.targets[0].id] = " ".join(following.value.value.split())
    return docs


def _members(cls: type) -> list[tuple[str, Any]]:
    # A public class's own members, and those it inherits from a class of a
    # private module (the pure core that a sync class and its async twin share).
    owners = [
        base
        for base in reversed(cls.__mro__)
        if base is cls or base.__module__.split(".")[-1].startswith("_")
    ]
    members: dict[str, Any] = {}
    for owner in owners:
        for name, member in vars(owner).items():
            if name.startswith("_") or name in {"__init__"}:
                continue
            if isinstance(
                member, property | classmethod | staticmethod
            ) or inspect.isfunction(member):
                members.pop(name, None)
                members[name] = member
    return list(members.items())


def _render_class(qualified: str, cls: type) -> list[str]:
    lines = [f"### `{qualified}`", ""]
    if issubclass(cls, enum.Enum):
        lines += ["```text", f"class {cls.__name__}(Enum)", "```", "", _doc(cls), ""]
        docs = _member_docs(cls)
        for member in cls:
            doc = docs.get(member.name)
            lines.append(
                f"- `{member.name}` = `{member.value!r}`" + (f": {doc}" if doc else "")
            )
        return [*lines, ""]
    if issubclass(cls, BaseException):
        bases = ", ".join(base.__name__ for base in cls.__bases__)
        lines += ["```text", f"class {cls.__name__}({bases})", "```", "", _doc(cls), ""]
        return lines
    lines += [
        "```text",
        f"class {cls.__name__}{_signature(cls)}",
        "```",
        "",
        _doc(cls),
        "",
    ]
    tests = [name for name, _ in _members(cls) if name.startswith("test_")]
    if tests:
        lines += [
            f"It runs {len(tests)} tests; their names state the rules they check.",
            "",
        ]
    for name, member in _members(cls):
        if name.startswith("test_"):
            continue
        if isinstance(member, property):
            lines += [
                f"#### `{cls.__name__}.{name}` (property)",
                "",
                _doc(member.fget),
                "",
            ]
            continue
        function = (
            member.__func__
            if isinstance(member, classmethod | staticmethod)
            else member
        )
        kind = " (classmethod)" if isinstance(member, classmethod) else ""
        lines += [
            f"#### `{cls.__name__}.{name}`{kind}",
            "",
            "```text",
            f"{name}{_signature(function)}",
            "```",
            "",
            _doc(function),
            "",
        ]
    return lines


def _render(module_name: str, summary: str) -> list[str]:
    module = importlib.import_module(module_name)
    lines = [f"## `{module_name}`", "", summary, ""]
    for name in sorted(module.__all__, key=str.lower):
        if name.startswith("__"):
            continue
        obj = getattr(module, name)
        qualified = f"{module_name}.{name}"
        if inspect.isclass(obj):
            lines += _render_class(qualified, obj)
        elif callable(obj):
            lines += [
                f"### `{qualified}`",
                "",
                "```text",
                f"{name}{_signature(obj)}",
                "```",
                "",
                _doc(obj),
                "",
            ]
        else:
            lines += [f"### `{qualified}`", "", f"A constant: `{obj!r}`.", ""]
    return lines


def _fixture_scope(decorator: ast.expr) -> str | None:
    """Return the scope of a ``@pytest.fixture`` decorator (or the plugin's async one), or None for another one."""
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if ast.unparse(target) not in {"pytest.fixture", "fixture", "_async_fixture"}:
        return None
    keywords = decorator.keywords if isinstance(decorator, ast.Call) else []
    for keyword in keywords:
        if keyword.arg == "scope":
            if not isinstance(keyword.value, ast.Constant):
                raise SystemExit(
                    f"a fixture scope must be a literal: {ast.unparse(decorator)}"
                )
            return str(keyword.value.value)
    return "function"


def _render_fixtures(module_name: str, summary: str) -> list[str]:
    # Read from the source: pytest keeps a fixture's scope only in private
    # attributes of its FixtureFunctionDefinition.
    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    lines = [f"## `{module_name}`", "", summary, ""]
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        scopes = [_fixture_scope(d) for d in node.decorator_list]
        scope = next((s for s in scopes if s is not None), None)
        if scope is None or node.name.startswith("_"):
            continue
        requests = [arg.arg for arg in node.args.args]
        returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
        lines += [
            f"### fixture `{node.name}`",
            "",
            "```text",
            f"{'async ' if isinstance(node, ast.AsyncFunctionDef) else ''}"
            f"{node.name}({', '.join(requests)}){returns}",
            "```",
            "",
            f"Scope: `{scope}`"
            + (
                f"; requests {', '.join(f'`{r}`' for r in requests)}."
                if requests
                else "."
            ),
            "",
            ast.get_docstring(node) or "(undocumented)",
            "",
        ]
    return lines


def render() -> str:
    """Return the reference page as Markdown."""
    lines = [
        "# Reference",
        "",
        "Every public name of eventstore, with its signature and docstring.",
        "Generated by `python docs/generate_reference.py`; do not edit by hand.",
        "Configuration fields and environment variables are under",
        "`eventstore.postgres.PoolConfig`.",
        "",
    ]
    for module_name, summary in MODULES:
        lines += _render(module_name, summary)
    lines += _render_fixtures(*PLUGIN)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    PAGE.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {PAGE}\n")
