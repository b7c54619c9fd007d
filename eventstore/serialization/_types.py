"""
Analyse attrs classes into a small tree of supported field types.

The tree is built once, when a class is registered. It drives everything that
must agree on what a field holds: the cattrs hooks, the schema description
for the lock file, the error diagnostics and the hypothesis strategies. A
type outside the supported set is a `RegistrationError` here, so it can never
be dropped silently at save time.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import keyword
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from eventstore.errors import RegistrationError

__all__ = [
    "TRANSIENT",
    "AttrsNode",
    "DictNode",
    "EnumNode",
    "FieldInfo",
    "LeafNode",
    "Node",
    "SeqNode",
    "TupleNode",
    "UnionNode",
    "analyze_class",
    "type_string",
]

TRANSIENT = "eventstore.transient"
"""
attrs field metadata key marking a field that is deliberately not serialized.

``attrs.field(factory=list, metadata={TRANSIENT: True})``: the field is left
out of payloads and takes its default when decoded. It must have a default.
"""

LEAF_CLASSES: dict[str, type] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "None": type(None),
    "Decimal": decimal.Decimal,
    "UUID": uuid.UUID,
    "datetime": _dt.datetime,
    "date": _dt.date,
}
_LEAF_BY_CLASS = {cls: name for name, cls in LEAF_CLASSES.items()}
# The JSON kind each leaf is written as; a union may hold one member per kind.
_LEAF_JSON_KIND = {
    "str": "string",
    "int": "integer",
    "float": "float",
    "bool": "boolean",
    "None": "null",
    "Decimal": "string",
    "UUID": "string",
    "datetime": "string",
    "date": "string",
}


@attrs.frozen
class LeafNode:
    """A scalar: str, int, float, bool, None, Decimal, UUID, datetime or date."""

    kind: str

    @property
    def py_class(self) -> type:
        """The exact Python class of values of this leaf."""
        return LEAF_CLASSES[self.kind]

    @property
    def json_kind(self) -> str:
        """The JSON kind the value is written as."""
        return _LEAF_JSON_KIND[self.kind]


@attrs.frozen
class EnumNode:
    """An `enum.Enum` whose members' values are all str or all int."""

    cls: type[enum.Enum]
    json_kind: str

    @property
    def py_class(self) -> type:
        """The enum class."""
        return self.cls


@attrs.frozen
class SeqNode:
    """A homogeneous list, ``tuple[X, ...]`` or frozenset; written as a JSON array."""

    container: type[Any]
    item: Node
    json_kind = "array"

    @property
    def py_class(self) -> type:
        """list, tuple or frozenset."""
        return self.container


@attrs.frozen
class TupleNode:
    """A fixed-length ``tuple[X, Y]``; written as a JSON array."""

    items: tuple[Node, ...]
    json_kind = "array"
    py_class: type[Any] = tuple


@attrs.frozen
class DictNode:
    """A ``dict[str, X]``; written as a JSON object."""

    value: Node
    json_kind = "object"
    py_class: type[Any] = dict


@attrs.frozen
class UnionNode:
    """A union (or Optional) of members of distinct JSON kinds."""

    members: tuple[Node, ...]
    json_kind = "union"
    # Never consulted: typing flattens unions, so no member is itself a union.
    py_class: type[Any] = object


@attrs.frozen(eq=False)
class FieldInfo:
    """One attrs field as the serializer sees it."""

    name: str
    alias: str
    node: Node
    has_default: bool
    transient: bool
    init: bool
    attribute: attrs.Attribute[Any]


@attrs.define(eq=False)
class AttrsNode:
    """A nested attrs class; its fields are filled in after creation (recursion)."""

    cls: type
    fields: tuple[FieldInfo, ...] = ()
    json_kind = "object"

    @property
    def py_class(self) -> type:
        """The attrs class."""
        return self.cls


Node = LeafNode | EnumNode | SeqNode | TupleNode | DictNode | UnionNode | AttrsNode


def analyze_class(cls: type, cache: dict[type, AttrsNode]) -> AttrsNode:
    """
    Build (or reuse from *cache*) the node of attrs class *cls*.

    Raises:
        RegistrationError: *cls* is not an attrs class, or a field has an
            unsupported type, or a transient field has no default.

    """
    known = cache.get(cls)
    if known is not None:
        return known
    if not (isinstance(cls, type) and attrs.has(cls)):
        raise RegistrationError(
            f"{_qualname(cls)} is not an attrs class: decorate it with @attrs.frozen "
            "(or @attrs.define)"
        )
    try:
        attrs.resolve_types(cls)
    except Exception as exc:  # NameError and friends from string annotations
        raise RegistrationError(
            f"cannot resolve the field annotations of {_qualname(cls)}: {exc}"
        ) from exc
    node = AttrsNode(cls)
    cache[cls] = node  # before the fields: a class may refer to itself
    fields = []
    for attribute in attrs.fields(cls):
        where = f"{_qualname(cls)}.{attribute.name}"
        transient = bool(attribute.metadata.get(TRANSIENT, False))
        has_default = attribute.default is not attrs.NOTHING
        if transient and not has_default:
            raise RegistrationError(
                f"transient field {where} has no default: give it a default or "
                "a factory, which it takes when decoded"
            )
        if not attribute.init and not has_default and not transient:
            raise RegistrationError(
                f"field {where} has init=False and no default: it could not be "
                "restored on decode if a payload lacks it; give it a default"
            )
        if attribute.type is None:
            raise RegistrationError(f"field {where} has no type annotation")
        if not attribute.name.isidentifier() or keyword.iskeyword(attribute.name):
            # attrs.make_class takes any name; the codec reads fields as attributes.
            raise RegistrationError(
                f"field {where} is not a Python identifier: name it one (an "
                "alias keeps its __init__ argument)"
            )
        field_node = (
            LeafNode("None")  # never encoded; the node only needs to exist
            if transient
            else _analyze(attribute.type, where, cache)
        )
        fields.append(
            FieldInfo(
                name=attribute.name,
                alias=attribute.alias or attribute.name,
                node=field_node,
                has_default=has_default,
                transient=transient,
                init=attribute.init,
                attribute=attribute,
            )
        )
    node.fields = tuple(fields)
    return node


def _analyze(tp: Any, where: str, cache: dict[type, AttrsNode]) -> Node:  # noqa: PLR0911, PLR0912 - one branch per supported kind
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is None or tp is type(None):
        return LeafNode("None")
    if origin is None and isinstance(tp, type):
        leaf = _LEAF_BY_CLASS.get(tp)
        if leaf is not None:
            return LeafNode(leaf)
        if issubclass(tp, enum.Enum):
            return _analyze_enum(tp, where)
        if attrs.has(tp):
            return analyze_class(tp, cache)
        if tp in (list, tuple, frozenset, dict):
            raise RegistrationError(
                f"field {where}: bare {tp.__name__} has no item type; write e.g. "
                f"{tp.__name__}[str{', ...' if tp is tuple else ''}]"
                if tp is not dict
                else f"field {where}: bare dict has no value type; write dict[str, ...]"
            )
    if origin in (typing.Union, types.UnionType):
        return _analyze_union(args, where, cache)
    if origin in (list, frozenset) and len(args) == 1:
        return SeqNode(origin, _analyze(args[0], where, cache))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return SeqNode(tuple, _analyze(args[0], where, cache))
        if args and Ellipsis not in args:
            return TupleNode(tuple(_analyze(arg, where, cache) for arg in args))
    if origin is dict and len(args) == 2:
        if args[0] is not str:
            raise RegistrationError(
                f"field {where}: dict keys must be str (JSON object keys), not {_type_repr(args[0])}"
            )
        return DictNode(_analyze(args[1], where, cache))
    raise RegistrationError(
        f"field {where} has unsupported type {_type_repr(tp)}; supported: str, int, "
        "float, bool, None, Decimal, UUID, datetime, date, Enum, list[X], "
        "tuple[X, ...], tuple[X, Y], frozenset[X], dict[str, X], unions of "
        "these, and attrs classes"
    )


def _analyze_enum(tp: type[enum.Enum], where: str) -> EnumNode:
    values = [member.value for member in tp]
    if values and all(value.__class__ is str for value in values):
        return EnumNode(tp, "string")
    if values and all(value.__class__ is int for value in values):
        return EnumNode(tp, "integer")
    raise RegistrationError(
        f"field {where}: enum {_qualname(tp)} must have all-str or all-int values "
        "to be stored as JSON"
    )


def _analyze_union(
    args: tuple[Any, ...], where: str, cache: dict[type, AttrsNode]
) -> UnionNode:
    members = tuple(_analyze(arg, where, cache) for arg in args)
    seen: dict[str, Node] = {}
    for member in members:
        kind = member.json_kind
        if kind in seen:
            raise RegistrationError(
                f"field {where}: union members {type_string(seen[kind])} and "
                f"{type_string(member)} are both stored as JSON {kind}, so a "
                "stored value could not tell them apart; wrap one of them in an "
                "attrs class or change the field's type"
            )
        seen[kind] = member
    integer, number = seen.get("integer"), seen.get("float")
    if (
        integer is not None
        and number is not None
        and not (isinstance(integer, LeafNode) and integer.kind == "int")
    ):
        # A float that comes back as an integer is read as the int member,
        # which for `int | float` is the same number, and for an enum no value.
        raise RegistrationError(
            f"field {where}: union members float and {type_string(integer)} "
            "cannot be told apart once stored: PostgreSQL's jsonb returns a float "
            f"of 1e16 or more as an integer, which would be read as "
            f"{type_string(integer)}; wrap one of them in an attrs class or "
            "change the field's type"
        )
    return UnionNode(members)


def type_string(node: Node, names: Mapping[type, str] | None = None) -> str:  # noqa: PLR0911 - one return per kind
    """
    Render *node* as a stable, readable type string for the schema lock.

    *names* overrides how classes are named (by module too, where two in
    one lock share a qualified name); others go by ``__qualname__``.
    """
    if isinstance(node, LeafNode):
        return node.kind
    if isinstance(node, EnumNode | AttrsNode):
        if names is not None and node.cls in names:
            return names[node.cls]
        return node.cls.__qualname__
    if isinstance(node, SeqNode):
        item = type_string(node.item, names)
        if node.container is tuple:
            return f"tuple[{item}, ...]"
        return f"{node.container.__name__}[{item}]"
    if isinstance(node, TupleNode):
        return f"tuple[{', '.join(type_string(item, names) for item in node.items)}]"
    if isinstance(node, DictNode):
        return f"dict[str, {type_string(node.value, names)}]"
    return " | ".join(type_string(member, names) for member in node.members)


def walk_nodes(node: Node, visit: Callable[[Node], None]) -> None:
    """Call *visit* on *node* and every node inside it, each attrs class once."""
    seen: set[int] = set()

    def go(current: Node) -> None:
        if isinstance(current, AttrsNode):
            if id(current) in seen:
                return
            seen.add(id(current))
        visit(current)
        if isinstance(current, AttrsNode):
            for field in current.fields:
                if not field.transient:
                    go(field.node)
        elif isinstance(current, SeqNode):
            go(current.item)
        elif isinstance(current, TupleNode):
            for item in current.items:
                go(item)
        elif isinstance(current, DictNode):
            go(current.value)
        elif isinstance(current, UnionNode):
            for member in current.members:
                go(member)

    go(node)


def _qualname(obj: object) -> str:
    return getattr(obj, "__qualname__", None) or repr(obj)


def _type_repr(tp: object) -> str:
    if isinstance(tp, type) and typing.get_origin(tp) is None:
        return tp.__qualname__
    return repr(tp).replace("typing.", "")
