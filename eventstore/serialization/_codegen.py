"""
Generated (un)structure functions: one Python function per attrs class.

cattrs' generated functions call one hook per field, and a hook per element
of a sequence; on a 20-field nested event those calls were a third of a
round trip. The functions written here inline what a hook would do for the
common kinds (a class check and the conversion, as one conditional
expression) and call the hook only where the check fails, so a bad value
still raises the hook's own `LeafError` and the registry still names the
field by walking the value again. Kinds with more to check (Decimal, UUID,
datetime and date from JSON, fixed tuples, unions other than Optional) keep
their hook, called directly.

Nested attrs classes are written out in their parent's function (a few
levels deep; not recursive ones, nor those inside containers), and objects
of plain slotted classes are built by setting their slots (`_slot_setters`
says which qualify). Decoding takes the fast path only when the payload has
exactly the class's fields; anything else (a field left to its default, an
unknown key, a non-object) goes to the cattrs function, which fills
defaults and raises as before.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import linecache
import math
import uuid
from collections.abc import Callable
from typing import Any

import attrs

from eventstore.serialization._types import (
    AttrsNode,
    DictNode,
    EnumNode,
    LeafNode,
    Node,
    SeqNode,
    UnionNode,
)

__all__ = ["generate_structure", "generate_unstructure", "sort_items"]

Unstructure = Callable[[Any], Any]
Structure = Callable[[Any, Any], Any]

# Leaves whose JSON value is the value itself: an exact-class check is all.
_SAME_VALUE_LEAVES = frozenset({"str", "int", "bool"})

# What every generated function may name, bound as its globals (a global
# is found faster than a builtin).
_COMMON_GLOBALS: dict[str, Any] = {
    "_str": str,
    "_int": int,
    "_bool": bool,
    "_float": float,
    "_list": list,
    "_dict": dict,
    "_frozenset": frozenset,
    "_Decimal": decimal.Decimal,
    "_UUID": uuid.UUID,
    "_datetime": _dt.datetime,
    "_date": _dt.date,
    "_isfinite": math.isfinite,
    "_new": object.__new__,
    "_parse_datetime": _dt.datetime.fromisoformat,
    "_parse_date": _dt.date.fromisoformat,
}


@attrs.define
class _Namespace:
    """The globals of one generated function: every object it refers to by name."""

    globals: dict[str, Any] = attrs.Factory(lambda: dict(_COMMON_GLOBALS))
    _names: dict[int, str] = attrs.Factory(dict)  # id of a bound object -> its name
    _locals: int = 0

    def ref(self, obj: object, hint: str) -> str:
        """Return the global name of *obj*, binding it on first use."""
        name = self._names.get(id(obj))
        if name is None:
            name = f"_{hint}{len(self._names)}"
            self._names[id(obj)] = name
            self.globals[name] = obj
        return name

    def local(self, hint: str) -> str:
        """Return a fresh local name."""
        self._locals += 1
        return f"{hint}{self._locals}"


def _json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def sort_items(items: list[Any]) -> list[Any]:
    """Sort a set's encoded items in place, so equal sets give equal payloads."""
    try:
        items.sort()
    except TypeError:  # mixed kinds (a union) or objects: order by their JSON
        items.sort(key=_json_key)
    return items


def _compile(source: str, name: str, namespace: _Namespace, label: str) -> Any:
    filename = f"<eventstore {label}>"  # label names the class with its module
    # Registered so that tracebacks through the function show its lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace.globals)  # noqa: S102 - our own generated source
    return namespace.globals[name]


# --- unstructure (object -> JSON value) -------------------------------------


def generate_unstructure(
    node: AttrsNode,
    hook: Callable[[Node], Unstructure],
    fail: Callable[[Any], Any],
) -> Unstructure:
    """
    Generate the unstructure function of *node*'s class.

    Arguments:
        node: The class.
        hook: The codec's unstructure hook of a node (its slow path and the
            function of kinds not inlined here).
        fail: Raises the error for a value of another class than *node*'s.

    """
    ns = _Namespace()
    writer = _UnstructureWriter(ns, hook)
    body = writer.object(node, "value", fail, (node.cls,))
    lines = ["def unstructure(value):", *writer.lines, f"    return {body}"]
    return _compile(  # type: ignore[no-any-return]
        "\n".join(lines) + "\n",
        "unstructure",
        ns,
        f"unstructure {node.cls.__module__}.{node.cls.__qualname__}",
    )


# Nested attrs fields are written out in their parent's function (no call
# per object) down to this depth; deeper ones, recursive ones and those in
# containers call their own function.
_INLINE_DEPTH = 3


def _inlined(node: Node, chain: tuple[type, ...]) -> AttrsNode | None:
    """Return *node* if it is an attrs class its parent may write out in place."""
    if (
        isinstance(node, AttrsNode)
        and node.cls not in chain
        and len(chain) < _INLINE_DEPTH
        and all(field.init and not field.transient for field in node.fields)
    ):
        return node
    return None


@attrs.define
class _UnstructureWriter:
    """Writes the statements of one unstructure function (all at its top level)."""

    ns: _Namespace
    hook: Callable[[Node], Unstructure]
    lines: list[str] = attrs.Factory(list)

    def object(
        self,
        node: AttrsNode,
        x: str,
        fail: Callable[[Any], Any],
        chain: tuple[type, ...],
    ) -> str:
        """Write the reading of the object named *x*; return its dict's expression."""
        ns = self.ns
        self.lines.append(f"    if {x}.__class__ is not {ns.ref(node.cls, 'cls')}:")
        self.lines.append(f"        {ns.ref(fail, 'fail')}({x})")
        items = []
        for field in node.fields:
            if field.transient:
                continue
            local = ns.local("f")
            self.lines.append(f"    {local} = {x}.{field.name}")
            nested = _inlined(field.node, chain)
            if nested is None:
                value = _u_expr(field.node, local, ns, self.hook)
            else:
                value = self.object(
                    nested, local, self.hook(nested), (*chain, nested.cls)
                )
            items.append(f"{field.name!r}: {value}")
        return "{" + ", ".join(items) + "}"


def _u_expr(  # noqa: PLR0911 - one branch per kind
    node: Node, x: str, ns: _Namespace, hook: Callable[[Node], Unstructure]
) -> str:
    """Return an expression encoding the value named *x* (a plain name: read twice)."""
    if isinstance(node, LeafNode):
        slow = f"{ns.ref(hook(node), 'u')}({x})"
        kind = node.kind
        if kind in _SAME_VALUE_LEAVES:
            return f"({x} if {x}.__class__ is _{kind} else {slow})"
        checks = {
            "None": (f"{x} is None", "None"),
            "float": (f"{x}.__class__ is _float and _isfinite({x})", x),
            "Decimal": (f"{x}.__class__ is _Decimal and {x}.is_finite()", f"_str({x})"),
            "UUID": (f"{x}.__class__ is _UUID", f"_str({x})"),
            "datetime": (
                # An offset with microseconds takes the slow path, which refuses it.
                f"{x}.__class__ is _datetime and {x}.utcoffset() is not None "
                f"and not {x}.utcoffset().microseconds",
                f"{x}.isoformat()",
            ),
            "date": (f"{x}.__class__ is _date", f"{x}.isoformat()"),
        }
        check, value = checks[kind]
        return f"({value} if {check} else {slow})"
    slow = f"{ns.ref(hook(node), 'u')}({x})"
    if isinstance(node, EnumNode):
        return (
            f"({x}._value_ if {x}.__class__ is {ns.ref(node.cls, 'enum')} else {slow})"
        )
    if isinstance(node, AttrsNode):
        return slow  # the class's own function checks its class
    if isinstance(node, SeqNode):
        element = ns.local("e")
        items = f"[{_u_expr(node.item, element, ns, hook)} for {element} in {x}]"
        container = ns.ref(node.container, "container")
        if node.container is frozenset:
            # Sorted, so equal sets always give equal payloads.
            items = f"{ns.ref(sort_items, 'sorted')}({items})"
        return f"({items} if {x}.__class__ is {container} else {slow})"
    if isinstance(node, DictNode):
        key, element = ns.local("k"), ns.local("e")
        key_expr = _u_expr(LeafNode("str"), key, ns, hook)
        value_expr = _u_expr(node.value, element, ns, hook)
        return (
            f"({{{key_expr}: {value_expr} for {key}, {element} in {x}.items()}}"
            f" if {x}.__class__ is _dict else {slow})"
        )
    optional = _optional_member(node)
    if optional is not None:
        return f"(None if {x} is None else {_u_expr(optional, x, ns, hook)})"
    return slow


def _optional_member(node: Node) -> Node | None:
    """Return the other member of ``X | None``, or None for any other node."""
    if not isinstance(node, UnionNode) or len(node.members) != 2:
        return None
    none = LeafNode("None")
    if none not in node.members:
        return None
    (other,) = (member for member in node.members if member != none)
    return other


# --- structure (JSON value -> object) ---------------------------------------


def generate_structure(
    node: AttrsNode,
    hook: Callable[[Node], Structure],
    enum_members: Callable[[EnumNode], dict[Any, Any]],
    fallback: Structure,
) -> Structure:
    """
    Generate the structure function of *node*'s class.

    Arguments:
        node: The class; its fields must all be set by ``__init__`` (or be
            transient).
        hook: The codec's structure hook of a node.
        enum_members: An enum's members by value.
        fallback: The function for payloads that do not hold exactly the
            class's fields (defaults to fill, keys to refuse, not an object).

    """
    ns = _Namespace()
    gen = _StructureWriter(ns, hook, enum_members)
    reads, build, call = gen.object(node, "data", "        ", (node.cls,))
    fallback_name = ns.ref(fallback, "fallback")
    lines = [
        "def structure(data, _=None):",
        f"    if data.__class__ is _dict and len(data) == {len(reads)}:",
    ]
    if reads:
        lines += [
            "        try:",
            *("    " + line for line in reads),
            "        except KeyError:",
            f"            return {fallback_name}(data, _)",
        ]
    lines += [*build, f"        return {call}", f"    return {fallback_name}(data, _)"]
    return _compile(  # type: ignore[no-any-return]
        "\n".join(lines) + "\n",
        "structure",
        ns,
        f"structure {node.cls.__module__}.{node.cls.__qualname__}",
    )


def _slot_setters(node: AttrsNode) -> dict[str, Any] | None:
    """
    Return the slot descriptors' setters of a class whose ``__init__`` does nothing else.

    attrs' ``__init__`` of a frozen class sets each field through
    ``object.__setattr__``, which looks the name up each time; a class whose
    ``__init__`` is attrs' own, with no validators, converters, pre- or
    post-init hooks and no slots but its fields' (a cached hash adds one), is
    built the same way by setting its slots directly.
    """
    cls = node.cls
    code = getattr(cls.__dict__.get("__init__"), "__code__", None)
    fields = attrs.fields(cls)
    slots = {
        name
        for klass in cls.__mro__
        for name in klass.__dict__.get("__slots__", ())
        if name != "__weakref__"
    }
    if (
        code is None
        or not code.co_filename.startswith("<attrs generated ")
        or code.co_name != "__init__"
        or "__slots__" not in cls.__dict__
        or hasattr(cls, "__attrs_pre_init__")
        or hasattr(cls, "__attrs_post_init__")
        or slots != {field.name for field in fields}
        or any(f.validator is not None or f.converter is not None for f in fields)
        or any(field.transient or not field.init for field in node.fields)
    ):
        return None
    return {field.name: getattr(cls, field.name).__set__ for field in fields}


def _init_arguments(node: AttrsNode, values: dict[str, str]) -> str:
    """Return the arguments of *node*'s ``__init__`` call, given each field's expression."""
    positional, keywords = [], []
    keyword = False  # once a field is left out, the rest go by keyword
    for field in node.fields:
        if field.transient:
            keyword = True
            continue
        expr = values[field.name]
        if keyword or field.attribute.kw_only:
            keywords.append(f"{field.alias}={expr}")
        else:
            positional.append(expr)
    # A keyword-only field may come before positional ones (a base class's):
    # the positional arguments go first, in their order, as __init__ takes them.
    return ", ".join(positional + keywords)


@attrs.define
class _StructureWriter:
    """Writes the statements and expressions of one structure function."""

    ns: _Namespace
    hook: Callable[[Node], Structure]
    enum_members: Callable[[EnumNode], dict[Any, Any]]

    def object(
        self, node: AttrsNode, x: str, indent: str, chain: tuple[type, ...]
    ) -> tuple[list[str], list[str], str]:
        """
        Write the decoding of the JSON object named *x* into *node*'s class.

        Returns the statements reading its fields into locals (a missing one
        raises KeyError), those building its nested objects from the locals,
        and the expression of the call that makes the object.
        """
        reads: list[str] = []
        build: list[str] = []
        values: dict[str, str] = {}  # field name -> the expression of its value
        for field in node.fields:
            if field.transient:
                continue
            local = self.ns.local("f")
            reads.append(f"{indent}{local} = {x}[{field.name!r}]")
            nested = _inlined(field.node, chain)
            if nested is None:
                values[field.name] = _s_expr(
                    field.node, local, self.ns, self.hook, self.enum_members
                )
            else:
                build += self.in_place(nested, local, indent, (*chain, nested.cls))
                values[field.name] = local
        cls = self.ns.ref(node.cls, "cls")
        setters = _slot_setters(node)
        if setters is None:
            return reads, build, f"{cls}({_init_arguments(node, values)})"
        made = self.ns.local("o")
        build.append(f"{indent}{made} = _new({cls})")
        build += [
            f"{indent}{self.ns.ref(setters[name], 'set')}({made}, {expr})"
            for name, expr in values.items()
        ]
        return reads, build, made

    def in_place(
        self, node: AttrsNode, x: str, indent: str, chain: tuple[type, ...]
    ) -> list[str]:
        """Statements replacing the JSON object named *x* by its *node* object."""
        inner = indent + "        "
        reads, build, call = self.object(node, x, inner, chain)
        slow = f"{x} = {self.ns.ref(self.hook(node), 's')}({x}, None)"
        if not reads:  # a class without stored fields: nothing to read, or miss
            return [
                f"{indent}if {x}.__class__ is _dict and len({x}) == 0:",
                *build,
                f"{inner}{x} = {call}",
                f"{indent}else:",
                f"{indent}    {slow}",
            ]
        return [
            f"{indent}if {x}.__class__ is _dict and len({x}) == {len(reads)}:",
            f"{indent}    try:",
            *reads,
            f"{indent}    except KeyError:",
            f"{indent}        {slow}",
            f"{indent}    else:",
            *build,
            f"{inner}{x} = {call}",
            f"{indent}else:",
            f"{indent}    {slow}",
        ]


def _s_expr(  # noqa: PLR0911 - one branch per kind
    node: Node,
    x: str,
    ns: _Namespace,
    hook: Callable[[Node], Structure],
    enum_members: Callable[[EnumNode], dict[Any, Any]],
) -> str:
    """Return an expression decoding the JSON value named *x* (a plain name: read twice)."""
    slow = f"{ns.ref(hook(node), 's')}({x}, None)"
    if isinstance(node, LeafNode):
        kind = node.kind
        if kind in _SAME_VALUE_LEAVES:
            return f"({x} if {x}.__class__ is _{kind} else {slow})"
        if kind == "None":
            return f"(None if {x} is None else {slow})"
        if kind == "float":  # the hook also takes an integer another writer wrote
            return f"({x} if {x}.__class__ is _float and _isfinite({x}) else {slow})"
        if kind == "UUID":
            return slow  # the hook's canonical-form parser
        # Parsed from a string: a string that does not parse raises here, and
        # the registry's slow path names the field, as the hook would.
        result = ns.local("r")
        check = {
            "Decimal": f"({result} := _Decimal({x})).is_finite()",
            "datetime": f"({result} := _parse_datetime({x})).utcoffset() is not None",
            "date": f"({result} := _parse_date({x})) is not None",
        }[kind]
        return f"({result} if {x}.__class__ is _str and {check} else {slow})"
    if isinstance(node, EnumNode):
        member = ns.local("m")
        value_class = "_str" if node.json_kind == "string" else "_int"
        members = ns.ref(enum_members(node), "members")
        # The class check first: True == 1 would find the member of value 1.
        return (
            f"({member} if {x}.__class__ is {value_class} and "
            f"({member} := {members}.get({x})) is not None else {slow})"
        )
    if isinstance(node, AttrsNode):
        return slow
    if isinstance(node, SeqNode):
        element = ns.local("e")
        item = _s_expr(node.item, element, ns, hook, enum_members)
        items = f"[{item} for {element} in {x}]"
        if node.container is not list:
            items = f"{ns.ref(node.container, 'container')}({items})"
        return f"({items} if {x}.__class__ is _list else {slow})"
    if isinstance(node, DictNode):
        key, element = ns.local("k"), ns.local("e")
        value_expr = _s_expr(node.value, element, ns, hook, enum_members)
        return (
            f"({{{key}: {value_expr} for {key}, {element} in {x}.items()}}"
            f" if {x}.__class__ is _dict else {slow})"
        )
    optional = _optional_member(node)
    if optional is not None:
        inner = _s_expr(optional, x, ns, hook, enum_members)
        return f"(None if {x} is None else {inner})"
    return slow
