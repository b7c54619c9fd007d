"""Concurrency checks with real asyncio tasks, shared by the async contract suite and the backend tests."""

from __future__ import annotations

import asyncio

from eventstore.events import NewEvent
from eventstore.store_async import AsyncEventStore
from eventstore.testing.concurrency import assert_rounds

__all__ = ["async_assert_one_winner_per_round"]


async def async_assert_one_winner_per_round(
    store: AsyncEventStore, *, tasks: int, rounds: int, stream_id: str = "contended"
) -> None:
    """
    Race *tasks* tasks appending to one stream with one expected version, *rounds* times.

    The async twin of `assert_one_winner_per_round`: each round, every task
    appends to *stream_id* expecting the version the previous round left,
    released together by an `asyncio.Barrier`; a second barrier lets every
    task record its outcome before the next round starts.

    Raises:
        AssertionError: A round had other than exactly one winner and
            ``tasks - 1`` `ConcurrencyError` losers reporting the right
            expected and actual versions, or the stream is not as long as the
            number of rounds.
    """
    barrier = asyncio.Barrier(tasks)
    outcomes: list[list[object]] = [[] for _ in range(rounds)]

    async def contend() -> None:
        for round_number in range(rounds):
            await barrier.wait()
            try:
                outcome: object = await store.append(
                    stream_id,
                    [NewEvent("t", {"round": round_number})],
                    expected_version=round_number,
                )
            except Exception as exc:  # the outcome under test, whatever it is
                outcome = exc
            outcomes[round_number].append(outcome)
            await barrier.wait()  # everyone records this round before the next starts

    async with asyncio.TaskGroup() as group:
        for _ in range(tasks):
            group.create_task(contend())

    assert_rounds(outcomes, tasks)
    assert await store.stream_version(stream_id) == rounds
    data = [event.data["round"] async for event in store.read_stream(stream_id)]
    assert data == list(range(rounds))
