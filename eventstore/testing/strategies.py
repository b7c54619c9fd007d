"""
hypothesis strategies for registered types, derived from their attrs fields.

`strategy_for` builds a strategy for any attrs class the registry supports,
nested value objects and collections included. *overrides* replace the
strategy of a whole type (key: the type) or of one field (key: ``(cls,
"field_name")``), for fields with validators or invariants the types alone
cannot express.

Generated text never holds NUL characters or lone surrogates (the stores
refuse them); datetimes carry fixed UTC offsets; floats and decimals are
finite. Transient and ``init=False`` fields keep their defaults.
"""

from __future__ import annotations

import datetime as _dt
import enum
import functools
import operator
from collections.abc import Mapping
from typing import Any, TypeVar

from hypothesis import strategies as st

from eventstore.serialization import Registry
from eventstore.serialization._types import (
    AttrsNode,
    DictNode,
    EnumNode,
    LeafNode,
    Node,
    SeqNode,
    TupleNode,
    analyze_class,
)

_T = TypeVar("_T")

__all__ = ["Overrides", "registry_strategies", "strategy_for"]

Overrides = Mapping[Any, st.SearchStrategy[Any]]
"""Strategy overrides: a type, or a ``(cls, "field_name")`` pair, to a strategy."""

_MAX_SIZE = 4  # collections stay small: depth, not length, finds bugs here

_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    max_size=20,
)
_OFFSETS = st.one_of(
    st.just(_dt.UTC),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
        lambda minutes: _dt.timezone(_dt.timedelta(minutes=minutes))
    ),
)
_LEAVES: dict[str, st.SearchStrategy[Any]] = {
    "str": _TEXT,
    "int": st.integers(),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "bool": st.booleans(),
    "None": st.none(),
    "Decimal": st.decimals(allow_nan=False, allow_infinity=False),
    "UUID": st.uuids(),
    "datetime": st.datetimes(timezones=_OFFSETS),
    "date": st.dates(),
}


def strategy_for(
    cls: type[_T], *, overrides: Overrides | None = None
) -> st.SearchStrategy[_T]:
    """
    Return a strategy for instances of attrs class *cls*.

    Args:
        cls: A registered class, or any attrs class of supported field types.
        overrides: Strategies replacing the derived ones, by type or by
            ``(cls, "field_name")``.

    Raises:
        RegistrationError: *cls* has a field of an unsupported type.

    """
    node = analyze_class(cls, {})
    return _Builder(overrides or {}).attrs_strategy(node)


def registry_strategies(
    registry: Registry, *, overrides: Overrides | None = None
) -> dict[str, st.SearchStrategy[Any]]:
    """Return a strategy for every type registered in *registry*, by type name."""
    builder = _Builder(overrides or {})
    return {
        name: builder.attrs_strategy(registry._node_of(cls))
        for name, cls in registry.types().items()
    }


_MAX_NESTING = 3
"""How deep a class may hold itself (through Optional, a collection or a union)."""


class _Builder:
    def __init__(self, overrides: Overrides) -> None:
        self._overrides = overrides
        # Each class's strategy once it is known not to hold itself.
        self._attrs: dict[type, st.SearchStrategy[Any]] = {}
        # The classes whose strategies are being built, outermost first.
        self._building: list[type] = []
        self._recursive: set[type] = set()

    def attrs_strategy(self, node: AttrsNode) -> st.SearchStrategy[Any]:
        cls = node.cls
        if cls in self._overrides:
            return self._overrides[cls]
        known = self._attrs.get(cls)
        if known is not None:
            return known
        if cls in self._building:
            self._recursive.update(self._building[self._building.index(cls) :])
            if self._building.count(cls) >= _MAX_NESTING:
                # Bounded trees: an unbounded recursion overruns hypothesis's
                # budget for most examples. Nothing here makes an Optional
                # None and a collection empty, one level up.
                return st.nothing()
        self._building.append(cls)
        try:
            kwargs = {}
            for field in node.fields:
                if field.transient or not field.init:
                    continue
                override = self._overrides.get((cls, field.name))
                kwargs[field.alias] = (
                    override if override is not None else self.node_strategy(field.node)
                )
        finally:
            self._building.pop()
        built = st.builds(cls, **kwargs)
        if cls not in self._recursive:
            self._attrs[cls] = built
        return built

    def node_strategy(self, node: Node) -> st.SearchStrategy[Any]:  # noqa: PLR0911 - one branch per kind
        if isinstance(node, AttrsNode):
            return self.attrs_strategy(node)
        py_class = getattr(node, "py_class", None)
        if py_class is not None and py_class in self._overrides:
            return self._overrides[py_class]
        if isinstance(node, LeafNode):
            return _LEAVES[node.kind]
        if isinstance(node, EnumNode):
            members = list(node.cls)
            if issubclass(node.cls, enum.Flag):
                # Combinations (and none) are values of a Flag too.
                flag = node.cls
                return st.lists(st.sampled_from(members), max_size=len(members)).map(
                    lambda chosen: functools.reduce(operator.or_, chosen, flag(0))
                )
            return st.sampled_from(members)
        if isinstance(node, SeqNode):
            item = self.node_strategy(node.item)
            size = _size_of(item)
            if node.container is frozenset:
                return st.frozensets(item, max_size=size)
            return st.lists(item, max_size=size).map(node.container)
        if isinstance(node, TupleNode):
            return st.tuples(*(self.node_strategy(item) for item in node.items))
        if isinstance(node, DictNode):
            value = self.node_strategy(node.value)
            return st.dictionaries(_TEXT, value, max_size=_size_of(value))
        return st.one_of(*(self.node_strategy(member) for member in node.members))


def _size_of(items: st.SearchStrategy[Any]) -> int:
    # A collection of a class nested as deep as it may be stays empty.
    return 0 if items.is_empty else _MAX_SIZE
