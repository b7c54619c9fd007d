"""
Which tables hold one stream's rows on a hash-partitioned schema, found in Python.

A statement on a partitioned table that runs from a generic plan (every
prepared statement of the store) locks all the partitions and their indexes
before it prunes them to the one it needs: the claim of an append holds 19
relation locks on 8 partitions against 3 on the plain layout. Sent to the
stream's own partitions (``events_p3``, ``streams_p3``), the same
statements lock what they use: the server's CPU for a mix of appends,
losing appends, versions and reads fell from 1.09-1.19 to 1.02-1.07 of
the plain layout's (``python -m benchmarks.partition_cost``), and a lock on one
partition no longer stops statements on the others.

The partition is PostgreSQL's own choice, computed the same way: the
server's 64-bit Jenkins hash of the text's bytes with the partitioning seed
(``hashtextextended(stream_id, HASH_PARTITION_SEED)``), combined as for the
first key column, modulo the partition count. Before a store sends anything
to a partition it asks the server where a few probe ids belong
(``satisfies_hash_partition``) and checks the partitions' names and bounds
(`Router.settle`); a server that hashes otherwise (another byte order,
encoding or collation) keeps the parent tables. A row sent to the wrong
partition would be refused by the partition's own constraint, never stored.
"""

from __future__ import annotations

import functools
import re
import struct
from collections.abc import Callable, Sequence
from typing import Final, Generic, TypeVar

import attrs

__all__ = ["PROBE_STREAM_IDS", "Router", "layout_modulus", "partition_of"]

_T = TypeVar("_T")

_M32: Final = 0xFFFFFFFF
_M64: Final = 0xFFFFFFFFFFFFFFFF
_HASH_PARTITION_SEED: Final = 0x7A5B22367996DCFD
"""The seed PostgreSQL hashes partition keys with (``HASH_PARTITION_SEED``)."""
_COMBINE: Final = 0x49A0F4DD15E5A8E3
"""What combining the first key's hash into a row hash of 0 adds (``hash_combine64``)."""
_WORDS = struct.Struct("<3I")


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = ((a - c) & _M32) ^ (((c << 4) | (c >> 28)) & _M32)
    c = (c + b) & _M32
    b = ((b - a) & _M32) ^ (((a << 6) | (a >> 26)) & _M32)
    a = (a + c) & _M32
    c = ((c - b) & _M32) ^ (((b << 8) | (b >> 24)) & _M32)
    b = (b + a) & _M32
    a = ((a - c) & _M32) ^ (((c << 16) | (c >> 16)) & _M32)
    c = (c + b) & _M32
    b = ((b - a) & _M32) ^ (((a << 19) | (a >> 13)) & _M32)
    a = (a + c) & _M32
    c = ((c - b) & _M32) ^ (((b << 4) | (b >> 28)) & _M32)
    b = (b + a) & _M32
    return a, b, c


def hash_bytes_extended(key: bytes, seed: int) -> int:
    """
    Return Bob Jenkins's lookup3 hash of *key* in 64 bits, as PostgreSQL computes it.

    The value of ``hashtextextended(text, seed)`` for the text whose UTF-8
    bytes are *key*, as an unsigned 64-bit int, on a little-endian server
    with a deterministic collation.
    """
    x: int
    y: int
    z: int
    length = len(key)
    a = b = c = (0x9E3779B9 + length + 3923095) & _M32
    if seed:
        a = (a + (seed >> 32)) & _M32
        b = (b + (seed & _M32)) & _M32
        a, b, c = _mix(a, b, c)
    whole = length - length % 12
    for offset in range(0, whole, 12):
        x, y, z = _WORDS.unpack_from(key, offset)
        a, b, c = _mix((a + x) & _M32, (b + y) & _M32, (c + z) & _M32)
    # The last 0-11 bytes, as little-endian words padded with zeroes; the
    # lowest byte of the third word is left to the length, so its bytes
    # move up by one.
    x, y, z = _WORDS.unpack(key[whole:] + bytes(12 - (length - whole)))
    a = (a + x) & _M32
    b = (b + y) & _M32
    c = (c + (z << 8)) & _M32
    # The final mixing.
    c = ((c ^ b) - (((b << 14) | (b >> 18)) & _M32)) & _M32
    a = ((a ^ c) - (((c << 11) | (c >> 21)) & _M32)) & _M32
    b = ((b ^ a) - (((a << 25) | (a >> 7)) & _M32)) & _M32
    c = ((c ^ b) - (((b << 16) | (b >> 16)) & _M32)) & _M32
    a = ((a ^ c) - (((c << 4) | (c >> 28)) & _M32)) & _M32
    b = ((b ^ a) - (((a << 14) | (a >> 18)) & _M32)) & _M32
    c = ((c ^ b) - (((b << 24) | (b >> 8)) & _M32)) & _M32
    return (b << 32) | c


# 5.8 us to hash a 20-character id, 0.09 us to find it in the cache: a store
# appends to the same streams again and again.
@functools.lru_cache(maxsize=65536)
def partition_of(stream_id: str, partitions: int) -> int:
    """Return the remainder of the hash partition PostgreSQL puts *stream_id* in, of *partitions*."""
    hashed = hash_bytes_extended(stream_id.encode("utf-8"), _HASH_PARTITION_SEED)
    return ((hashed + _COMBINE) & _M64) % partitions


PROBE_STREAM_IDS: Final = (
    "",
    "a",
    "order-1",
    "account-00000042",
    "Überweisung/2026-12",
    "注文-七",
    "emoji-\U0001f600-stream",
    "a-longer-stream-id-of-more-than-twelve-bytes-1234567890",
)
"""Ids whose partitions the server is asked for before a store computes any itself."""

_BOUND = re.compile(r"FOR VALUES WITH \(modulus (\d+), remainder (\d+)\)")
_TABLES: Final = ("streams", "events", "snapshots")


@attrs.define
class Router(Generic[_T]):
    """
    The statements that reach one stream's rows: its own partitions', or the parent tables'.

    A store builds one, sends every statement on one stream's rows through
    `for_stream`, and settles it (`settle`) with what the server says about
    the layout before the first: until then, and whenever the server's
    layout or hashing is not what this module computes, `for_stream` gives
    the parent tables' statements, which are right on any layout.

    Attributes:
        parent: The statements on the parent tables.
        render: Renders the statements on the partitions of one remainder.
        settled: Whether the server has been asked (`settle`).

    """

    parent: _T
    render: Callable[[int], _T]
    settled: bool = attrs.field(init=False, default=False)
    _modulus: int = attrs.field(init=False, default=0)
    """The partition count statements are routed by; 0: none (the parent tables)."""
    _by_partition: dict[int, _T] = attrs.field(init=False, factory=dict)
    """Statements by remainder; they name partition ``_p{r}`` whatever the modulus, so they stay valid."""

    def for_stream(self, stream_id: str) -> _T:
        """Return the statements on *stream_id*'s rows."""
        if not self._modulus:
            return self.parent
        remainder = partition_of(stream_id, self._modulus)
        statements = self._by_partition.get(remainder)
        if statements is None:
            # Rendered on first use: 1,024 partitions would take seconds.
            statements = self._by_partition.setdefault(
                remainder, self.render(remainder)
            )
        return statements

    def for_append(self, stream_id: str, *, creates: bool) -> _T:
        """
        Return the statements of an append to *stream_id*; *creates*: its expected version is 0.

        A stream's first append goes through the parent tables: its id is
        new to this process, and hashing it in Python (5.8 us, more on a
        busy host) with the partition's own constraint check on the server
        cost more than the parent's locks save (new streams: 142 against
        123 us of client CPU, 133 against 127 of server CPU per append).
        """
        return self.parent if creates else self.for_stream(stream_id)

    def settle(
        self, exists: bool, modulus: int, probed: Sequence[int | None] | None
    ) -> bool:
        """
        Decide from the server's answers whether to address partitions directly.

        Arguments:
            exists: Whether the schema's events table exists; if not, nothing
                is settled, and the server is asked again next time (a
                migration may create it meanwhile).
            modulus: The partition count of the schema's layout, as
                `layout_modulus` reads it; 0: none this module can route to.
            probed: The remainder the server gives each of `PROBE_STREAM_IDS`
                of *modulus* partitions (None where none takes it), or None
                when it was not asked.

        Returns:
            Whether the store addresses partitions directly from now on.

        """
        if not exists:
            return False
        expected = (
            [partition_of(i, modulus) for i in PROBE_STREAM_IDS] if modulus else None
        )
        direct = probed is not None and list(probed) == expected
        self._modulus = modulus if direct else 0
        self.settled = True
        return direct

    @property
    def direct(self) -> bool:
        """Whether statements go to each stream's own partitions."""
        return bool(self._modulus)

    def unsettle(self) -> None:
        """Ask the server again before the next statement (the layout may have been created since)."""
        self._modulus = 0
        self.settled = False


_UTF8_BYTES: Final = frozenset({"UTF8", "SQL_ASCII"})
"""Server encodings that store a str's UTF-8 bytes as they are (SQL_ASCII: whatever bytes come)."""


def layout_modulus(bounds: Sequence[Sequence[str]], encoding: str = "UTF8") -> int:
    """
    Return N if *bounds* are the N partitions of each table `partitioned_layout` makes, else 0.

    Arguments:
        bounds: ``(partition name, bound)`` of every partition of the three
            stream tables (``pg_get_expr(relpartbound, 0)``); a partition
            ``{table}_p{r}`` must hold remainder r of the same modulus N.
        encoding: The database's ``server_encoding``. One that keeps text
            in other bytes than UTF-8 (LATIN1, …) gives 0: the server hashes
            those bytes, so this module could not place an id with a
            non-ASCII character (and the probe ids could not be sent).

    """
    partitions, rest = divmod(len(bounds), len(_TABLES))
    if rest or not partitions or encoding not in _UTF8_BYTES:
        return 0
    expected = {
        f"{table}_p{remainder}": (partitions, remainder)
        for table in _TABLES
        for remainder in range(partitions)
    }
    found = {}
    for name, bound in bounds:
        match = _BOUND.fullmatch(bound)
        if match is None:
            return 0
        found[name] = (int(match.group(1)), int(match.group(2)))
    return partitions if found == expected else 0
