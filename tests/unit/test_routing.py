"""The pure decisions of routing a stream's statements to its hash partitions."""

from __future__ import annotations

import pytest

from eventstore.postgres._routing import (
    PROBE_STREAM_IDS,
    Router,
    layout_modulus,
    partition_of,
)


def bounds(
    partitions: int, tables: tuple[str, ...] = ("streams", "events", "snapshots")
) -> list[list[str]]:
    return [
        [f"{table}_p{r}", f"FOR VALUES WITH (modulus {partitions}, remainder {r})"]
        for table in tables
        for r in range(partitions)
    ]


def router() -> Router[str]:
    return Router("parent", lambda remainder: f"partition {remainder}")


def probed(partitions: int) -> list[int | None]:
    return [partition_of(i, partitions) for i in PROBE_STREAM_IDS]


@pytest.mark.parametrize("partitions", [2, 8, 1024])
def test_the_layout_partitions_n_makes_reads_as_n(partitions: int) -> None:
    assert layout_modulus(bounds(partitions)) == partitions
    assert layout_modulus(list(reversed(bounds(partitions)))) == partitions


def test_any_other_layout_reads_as_none_to_route_to() -> None:
    assert layout_modulus([]) == 0  # a plain layout
    assert layout_modulus(bounds(4, ("streams", "events"))) == 0  # snapshots plain
    renamed = bounds(4)
    renamed[5] = ["events_part1", renamed[5][1]]
    assert layout_modulus(renamed) == 0
    swapped = bounds(4)
    swapped[0][1], swapped[1][1] = swapped[1][1], swapped[0][1]  # p0 holds remainder 1
    assert layout_modulus(swapped) == 0
    mixed = bounds(4)
    mixed[2] = ["streams_p2", "FOR VALUES WITH (modulus 8, remainder 2)"]
    assert layout_modulus(mixed) == 0
    listed = bounds(2)
    listed[0] = ["streams_p0", "FOR VALUES IN ('a')"]
    assert layout_modulus(listed) == 0


def test_a_router_routes_only_when_the_server_placed_every_probe_as_computed() -> None:
    agreeing = router()
    assert agreeing.for_stream("s") == "parent"  # not settled: the parent tables
    assert agreeing.settle(True, 8, probed(8))
    assert agreeing.settled
    assert agreeing.direct
    assert agreeing.for_stream("s") == f"partition {partition_of('s', 8)}"

    disagreeing = router()
    other = probed(8)
    other[3] = (other[3] or 0) + 1
    assert not disagreeing.settle(True, 8, other)
    assert disagreeing.settled
    assert not disagreeing.direct
    assert disagreeing.for_stream("s") == "parent"

    plain = router()
    assert not plain.settle(True, 0, None)
    assert plain.settled
    assert plain.for_stream("s") == "parent"


def test_a_missing_schema_settles_nothing_and_a_migration_unsettles() -> None:
    early = router()
    assert not early.settle(False, 0, None)
    assert not early.settled  # asked again at the next statement
    assert early.settle(True, 4, probed(4))
    early.unsettle()
    assert not early.settled
    assert early.for_stream("s") == "parent"
    assert early.settle(True, 8, probed(8))
    assert early.for_stream("s") == f"partition {partition_of('s', 8)}"


def test_statements_are_rendered_once_per_partition() -> None:
    rendered: list[int] = []

    def render(remainder: int) -> str:
        rendered.append(remainder)
        return f"partition {remainder}"

    routed = Router("parent", render)
    routed.settle(True, 4, probed(4))
    for n in range(200):
        routed.for_stream(f"s-{n}")
    assert sorted(rendered) == [0, 1, 2, 3]


def test_a_streams_first_append_goes_through_the_parent_tables() -> None:
    routed = router()
    routed.settle(True, 8, probed(8))
    assert routed.for_append("s", creates=True) == "parent"
    assert routed.for_append("s", creates=False) == routed.for_stream("s") != "parent"


@pytest.mark.parametrize(
    ("encoding", "routed"),
    [("UTF8", 4), ("SQL_ASCII", 4), ("LATIN1", 0), ("EUC_JP", 0)],
)
def test_only_databases_that_keep_utf8_bytes_are_routed(
    encoding: str, routed: int
) -> None:
    assert layout_modulus(bounds(4), encoding) == routed
