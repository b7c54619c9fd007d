"""
Slow-path walkers that find *where* an encode or decode failed.

The generated functions are fast and say little; when one fails, the registry
walks the value once more with these to name the field (``items[2].price``)
and the problem.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from eventstore.serialization._converter import (
    _JSON_KIND_OF_CLASS,
    _LEAF_STRUCTURE,
    _LEAF_UNSTRUCTURE,
    LeafError,
)
from eventstore.serialization._types import (
    AttrsNode,
    DictNode,
    EnumNode,
    LeafNode,
    Node,
    SeqNode,
    TupleNode,
)

__all__ = ["decode_problem", "encode_problem"]


def encode_problem(node: Node, value: Any, path: str) -> str | None:  # noqa: PLR0911, PLR0912 - one branch per kind
    """Return ``"path: problem"`` for the first value that cannot be encoded."""
    if isinstance(node, LeafNode):
        try:
            _LEAF_UNSTRUCTURE[node.kind](value)
        except LeafError as exc:
            return f"{path}: {exc}"
        return None
    if isinstance(node, EnumNode):
        if value.__class__ is not node.cls:
            return f"{path}: expected {node.cls.__qualname__}, got {value!r}"
        return None
    if isinstance(node, AttrsNode):
        if value.__class__ is not node.cls:
            return (
                f"{path}: expected {node.cls.__qualname__}, got "
                f"{type(value).__qualname__} (subclasses are not encoded: their "
                "extra fields would be lost)"
            )
        for field in node.fields:
            if field.transient:
                continue
            problem = encode_problem(
                field.node, getattr(value, field.name), f"{path}.{field.name}"
            )
            if problem:
                return problem
        return None
    if isinstance(node, SeqNode | TupleNode):
        if type(value) is not node.py_class:
            return (
                f"{path}: expected {node.py_class.__name__}, got {type(value).__name__}"
            )
        elements: list[Any] = list(cast("Iterable[Any]", value))
        items = (
            [node.item] * len(elements)
            if isinstance(node, SeqNode)
            else list(node.items)
        )
        if len(items) != len(elements):
            return (
                f"{path}: expected a tuple of {len(items)}, got {len(elements)} items"
            )
        for index, (item, element) in enumerate(zip(items, elements, strict=True)):
            problem = encode_problem(item, element, f"{path}[{index}]")
            if problem:
                return problem
        return None
    if isinstance(node, DictNode):
        if value.__class__ is not dict:
            return f"{path}: expected dict, got {type(value).__name__}"
        for key, element in value.items():
            if key.__class__ is not str:
                return f"{path}: dict keys must be str, got {key!r}"
            problem = encode_problem(node.value, element, f"{path}[{key!r}]")
            if problem:
                return problem
        return None
    for member in node.members:
        if value.__class__ is member.py_class:
            return encode_problem(member, value, path)
    return (
        f"{path}: {type(value).__qualname__} {value!r} is not one of the union's types"
    )


def decode_problem(node: Node, data: Any, path: str) -> str | None:  # noqa: PLR0911, PLR0912 - one branch per kind
    """Return ``"path: problem"`` for the first part of *data* that cannot be decoded."""
    if isinstance(node, LeafNode):
        try:
            _LEAF_STRUCTURE[node.kind](data, None)
        except LeafError as exc:
            return f"{path}: {exc}"
        return None
    if isinstance(node, EnumNode):
        # The decoder's own test: the exact JSON class first, since the enum
        # itself takes true for a member of value 1.
        value_class = str if node.json_kind == "string" else int
        if data.__class__ is not value_class or all(
            member._value_ != data for member in node.cls
        ):
            return f"{path}: {data!r} is not a value of {node.cls.__qualname__}"
        return None
    if isinstance(node, AttrsNode):
        if not isinstance(data, dict):
            return f"{path}: expected a JSON object, got {data!r}"
        known = {field.name for field in node.fields if not field.transient}
        for field in node.fields:
            if field.transient:
                continue
            if field.name not in data:
                if not field.has_default:
                    return (
                        f"missing field {path}.{field.name} (it has no default; an "
                        "upcaster must add it)"
                    )
                continue
            problem = decode_problem(
                field.node, data[field.name], f"{path}.{field.name}"
            )
            if problem:
                return problem
        extra = sorted(set(data) - known)
        if extra:
            return (
                f"{path}: unexpected fields {', '.join(map(repr, extra))} (not "
                "fields of the class; an upcaster must drop or move them)"
            )
        return None
    if isinstance(node, SeqNode | TupleNode):
        if not isinstance(data, list):
            return f"{path}: expected a JSON array, got {data!r}"
        items = (
            [node.item] * len(data) if isinstance(node, SeqNode) else list(node.items)
        )
        if len(items) != len(data):
            return f"{path}: expected an array of {len(items)}, got {len(data)} items"
        for index, (item, element) in enumerate(zip(items, data, strict=True)):
            problem = decode_problem(item, element, f"{path}[{index}]")
            if problem:
                return problem
        return None
    if isinstance(node, DictNode):
        if not isinstance(data, dict):
            return f"{path}: expected a JSON object, got {data!r}"
        for key, element in data.items():
            problem = decode_problem(node.value, element, f"{path}[{key!r}]")
            if problem:
                return problem
        return None
    kind = _JSON_KIND_OF_CLASS.get(data.__class__)
    for member in node.members:
        if member.json_kind == kind or (
            kind == "integer" and member.json_kind == "float"
        ):
            return decode_problem(member, data, path)
    return (
        f"{path}: {data!r} fits none of {' | '.join(m.json_kind for m in node.members)}"
    )
