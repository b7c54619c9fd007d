import functools
import logging
import threading
from typing import Any

import pytest

from eventstore import ConcurrencyError, ConfigError, EventStore, RetryPolicy
from tests.repository.domain import Counter, CounterRepository, make_registry


class AlwaysConflicting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        raise ConcurrencyError("s", self.calls, self.calls + 1)


def test_the_default_delays_are_50_100_200_ms() -> None:
    policy = RetryPolicy()
    assert (policy.max_retries, policy.base_delay, policy.jitter) == (3, 0.05, True)
    assert policy.delays() == (0.05, 0.1, 0.2)


def test_without_jitter_the_waits_are_exactly_the_delays_and_the_attempts_are_counted() -> (
    None
):
    sleeps: list[float] = []
    policy = RetryPolicy(jitter=False, sleep=sleeps.append)
    conflicting = AlwaysConflicting()
    with pytest.raises(ConcurrencyError) as caught:
        policy.call(conflicting)
    assert sleeps == [0.05, 0.1, 0.2]
    assert conflicting.calls == 4
    assert caught.value.attempts == 4
    assert caught.value.actual == 5  # the last conflict, not the first
    assert "gave up after 4 attempts" in str(caught.value)


def test_jitter_adds_at_most_one_base_delay() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(base_delay=0.05, sleep=sleeps.append)
    for _ in range(20):
        with pytest.raises(ConcurrencyError):
            policy.call(AlwaysConflicting())
    nominal = [0.05, 0.1, 0.2] * 20
    assert all(d <= s <= d + 0.05 for s, d in zip(sleeps, nominal, strict=True))
    assert len(set(sleeps)) > 3  # the waits really vary


def test_waits_are_capped_by_max_delay() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(
        max_retries=6, base_delay=0.1, max_delay=0.5, jitter=False, sleep=sleeps.append
    )
    with pytest.raises(ConcurrencyError):
        policy.call(AlwaysConflicting())
    assert sleeps == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]
    assert policy.delays() == tuple(sleeps)


def test_zero_retries_means_one_attempt() -> None:
    conflicting = AlwaysConflicting()
    with pytest.raises(ConcurrencyError) as caught:
        RetryPolicy(max_retries=0, sleep=lambda _s: pytest.fail("must not wait")).call(
            conflicting
        )
    assert (conflicting.calls, caught.value.attempts) == (1, 1)


def test_other_errors_are_never_retried() -> None:
    calls: list[int] = []

    def failing() -> None:
        calls.append(1)
        raise KeyError("host bug")

    with pytest.raises(KeyError):
        RetryPolicy(sleep=lambda _s: pytest.fail("must not wait")).call(failing)
    assert calls == [1]


def test_a_success_after_conflicts_returns_its_value() -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConcurrencyError("s", 1, 2)
        return "done"

    assert RetryPolicy(sleep=lambda _s: None).call(flaky) == "done"
    assert len(attempts) == 3


def test_the_policy_decorates_a_host_service_function(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    @RetryPolicy(sleep=lambda _s: None)
    def approve(document_id: str, *, by: str) -> str:
        calls.append(document_id)
        if len(calls) == 1:
            raise ConcurrencyError(f"document-{document_id}", 3, 4)
        return f"{document_id} approved by {by}"

    with caplog.at_level(logging.WARNING, logger="eventstore.retry"):
        assert approve("d1", by="ana") == "d1 approved by ana"
    assert calls == ["d1", "d1"]
    assert approve.__name__ == "approve"
    assert [r.getMessage() for r in caplog.records] == [
        "conflict on stream 'document-d1': expected version 3, actual 4 (attempt 1 of 4)"
    ]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.5}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"base_delay": -0.1}, "base_delay"),
        ({"base_delay": "fast"}, "base_delay"),
        ({"max_delay": float("nan")}, "max_delay"),
        # Infinite (or past threading.TIMEOUT_MAX): the sync sleep raised
        # OverflowError, the async one waited forever.
        ({"base_delay": float("inf"), "max_delay": float("inf")}, "base_delay"),
        ({"max_delay": 1e10}, "max_delay"),
        ({"base_delay": 1.0, "max_delay": 0.5}, "max_delay"),
    ],
)
def test_bad_policies_are_config_errors(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        RetryPolicy(**kwargs)


def test_update_gives_up_with_the_last_conflict_and_its_attempt_count(
    store: EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    sleeps: list[float] = []
    repo = CounterRepository(
        store,
        make_registry(),
        retry_policy=RetryPolicy(jitter=False, sleep=sleeps.append),
    )
    repo.create(Counter.open("c1", "x"))
    rivals = 0

    def command(counter: Counter) -> None:
        nonlocal rivals
        rivals += 1
        rival = repo.get("c1")  # someone else always saves first
        rival.increment()
        repo.save(rival)
        counter.increment()

    with (
        caplog.at_level(logging.WARNING, logger="eventstore.repository"),
        pytest.raises(ConcurrencyError) as caught,
    ):
        repo.update("c1", command)
    assert caught.value.attempts == 4
    assert (caught.value.expected, caught.value.actual) == (4, 5)
    assert sleeps == [0.05, 0.1, 0.2]
    assert [r.attempt for r in caplog.records] == [1, 2, 3, 4]  # type: ignore[attr-defined]  # set through extra=


def test_update_never_retries_the_host_command_error(store: EventStore) -> None:
    repo = CounterRepository(
        store,
        make_registry(),
        retry_policy=RetryPolicy(sleep=lambda _s: pytest.fail("no wait")),
    )
    repo.create(Counter.open("c1", "x"))
    runs: list[int] = []

    def command(counter: Counter) -> None:
        runs.append(1)
        counter.increment(-1)

    with pytest.raises(ValueError, match="positive"):
        repo.update("c1", command)
    assert runs == [1]
    assert store.stream_version("counter-c1") == 1


def test_a_conflict_raised_by_the_host_command_itself_is_not_retried(
    store: EventStore,
) -> None:
    # Say the command saves another aggregate of its own and that save conflicts:
    # re-running the command would repeat its side effects.
    repo = CounterRepository(
        store,
        make_registry(),
        retry_policy=RetryPolicy(sleep=lambda _s: pytest.fail("no wait")),
    )
    repo.create(Counter.open("c1", "x"))
    runs: list[int] = []
    own_conflict = ConcurrencyError("other-stream", 3, 4)

    def command(counter: Counter) -> None:
        runs.append(1)
        counter.increment()
        raise own_conflict

    with pytest.raises(ConcurrencyError) as caught:
        repo.update("c1", command)
    assert caught.value is own_conflict
    assert caught.value.attempts is None
    assert runs == [1]
    assert store.stream_version("counter-c1") == 1


def test_every_attempt_is_reported_and_a_give_up_error_ends_at_the_first() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(max_retries=2, jitter=False, sleep=sleeps.append)
    seen: list[tuple[int, BaseException]] = []
    with pytest.raises(ConcurrencyError) as caught:
        policy.call(AlwaysConflicting(), on_error=lambda exc, n: seen.append((n, exc)))
    assert [(n, getattr(exc, "actual", None)) for n, exc in seen] == [
        (1, 2),
        (2, 3),
        (3, 4),
    ]
    assert sleeps == [0.05, 0.1]
    assert caught.value.attempts == 3

    class Refused(ConcurrencyError):
        pass

    def refuse() -> None:
        raise Refused("s", 0, 1)

    sleeps.clear()
    with pytest.raises(Refused):
        policy.call(refuse, give_up_on=(Refused,))
    assert sleeps == []


async def test_acall_retries_as_call_does_and_returns_the_success() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    policy = RetryPolicy(max_retries=3, jitter=False, async_sleep=sleep)
    conflicting = AlwaysConflicting()

    async def flaky() -> str:
        if conflicting.calls < 2:
            conflicting()
        return "done"

    seen: list[int] = []
    assert await policy.acall(flaky, on_error=lambda exc, n: seen.append(n)) == "done"
    assert (seen, slept, conflicting.calls) == ([1, 2], [0.05, 0.1], 2)
    assert await policy.acall(flaky) == "done"  # at once: no wait
    assert slept == [0.05, 0.1]


async def test_the_policy_decorates_an_object_whose_call_is_async() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    class Approve:
        def __init__(self) -> None:
            self.calls = 0

        async def __call__(self, document_id: str) -> str:
            self.calls += 1
            if self.calls == 1:
                raise ConcurrencyError(f"document-{document_id}", 3, 4)
            return f"{document_id} approved"

    approve = Approve()
    retried = RetryPolicy(async_sleep=sleep)(approve)
    assert await retried("d1") == "d1 approved"
    assert (approve.calls, len(slept)) == (2, 1)


async def test_the_policy_retries_an_async_def_behind_a_decorator_that_knows_no_coroutines() -> (
    None
):
    # A tracing or logging decorator written for plain functions hides the
    # async def: the conflicts come only when the awaitable is awaited.
    attempts = 0

    def traced(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

        return wrapper

    @RetryPolicy(max_retries=3, base_delay=0.0, max_delay=0.0, jitter=False)
    @traced
    async def service(stream_id: str) -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConcurrencyError(stream_id, 1, 2)
        return f"saved {stream_id}"

    assert await service("s") == "saved s"
    assert attempts == 3


def test_a_policy_at_the_longest_wait_never_asks_for_a_longer_one() -> None:
    # Jitter adds up to base_delay on top of max_delay: past TIMEOUT_MAX the
    # default time.sleep raised OverflowError at the first retry.
    slept: list[float] = []
    policy = RetryPolicy(
        max_retries=1,
        base_delay=threading.TIMEOUT_MAX,
        max_delay=threading.TIMEOUT_MAX,
        jitter=True,
        sleep=slept.append,
    )
    calls = 0

    def conflicting_once() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConcurrencyError("s", 0, 1)
        return "done"

    assert policy.call(conflicting_once) == "done"
    assert slept == [pytest.approx(threading.TIMEOUT_MAX)]
    assert slept[0] <= threading.TIMEOUT_MAX
