"""Concurrency checks with real threads, shared by the contract suite and the backend tests."""

from __future__ import annotations

import threading

from eventstore.errors import ConcurrencyError
from eventstore.events import AppendResult, NewEvent
from eventstore.store import EventStore

__all__ = ["assert_one_winner_per_round", "assert_rounds"]


def assert_one_winner_per_round(
    store: EventStore, *, threads: int, rounds: int, stream_id: str = "contended"
) -> None:
    """
    Race *threads* threads appending to one stream with one expected version, *rounds* times.

    Each round, every thread appends to *stream_id* expecting the version the
    previous round left, released together by a barrier; a second barrier
    lets every thread record its outcome before the next round starts.

    Raises:
        AssertionError: A round had other than exactly one winner and
            ``threads - 1`` `ConcurrencyError` losers reporting the right
            expected and actual versions, or the stream is not as long as the
            number of rounds.
    """
    barrier = threading.Barrier(threads)
    outcomes: list[list[object]] = [[] for _ in range(rounds)]
    lock = threading.Lock()

    def contend() -> None:
        for round_number in range(rounds):
            barrier.wait()
            try:
                outcome: object = store.append(
                    stream_id,
                    [NewEvent("t", {"round": round_number})],
                    expected_version=round_number,
                )
            except Exception as exc:  # the outcome under test, whatever it is
                outcome = exc
            with lock:
                outcomes[round_number].append(outcome)
            barrier.wait()  # everyone records this round before the next starts

    workers = [threading.Thread(target=contend) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert_rounds(outcomes, threads)
    assert store.stream_version(stream_id) == rounds
    data = [event.data["round"] for event in store.read_stream(stream_id)]
    assert data == list(range(rounds))


def assert_rounds(outcomes: list[list[object]], contenders: int) -> None:
    """
    Check each round's outcomes: one winner at the round's version, every other a conflict.

    Args:
        outcomes: Per round, what each contender's append returned or raised.
        contenders: How many appended each round.

    Raises:
        AssertionError: A round had other than exactly one winner and
            ``contenders - 1`` `ConcurrencyError` losers reporting the right
            expected and actual versions.
    """
    for round_number, round_outcomes in enumerate(outcomes):
        winners = [o for o in round_outcomes if isinstance(o, AppendResult)]
        losers = [o for o in round_outcomes if isinstance(o, ConcurrencyError)]
        assert len(winners) == 1, (round_number, round_outcomes)
        assert winners[0].version == round_number + 1, (round_number, winners)
        assert len(losers) == contenders - 1, (round_number, round_outcomes)
        assert all(loser.actual == round_number + 1 for loser in losers), losers
        assert all(loser.expected == round_number for loser in losers), losers
