"""`RetryPolicy`: how often and how patiently to retry, declared once, run by tenacity."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, ParamSpec, TypeAlias, TypeVar, cast

import attrs
import tenacity

from eventstore._validation import MAX_SECONDS
from eventstore.errors import ConcurrencyError, ConfigError

__all__ = ["AsyncAttempt", "Attempt", "RetryPolicy"]

P = ParamSpec("P")
T = TypeVar("T")

Attempt: TypeAlias = Callable[[], T]
"""What `RetryPolicy.call` runs: called again, whole, on each retry."""

AsyncAttempt: TypeAlias = Callable[[], Awaitable[T]]
"""What `RetryPolicy.acall` awaits: called again, whole, on each retry."""

_log = logging.getLogger("eventstore.retry")


def _non_negative(
    _instance: object, attribute: attrs.Attribute[float], value: float
) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= MAX_SECONDS
    ):
        raise ConfigError(
            f"RetryPolicy.{attribute.name} must be a number of seconds from 0 to "
            f"{MAX_SECONDS:.0f}, got {value!r}"
        )


def _retry_count(
    _instance: object, attribute: attrs.Attribute[int], value: int
) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(
            f"RetryPolicy.{attribute.name} must be an int >= 0, got {value!r}"
        )


_AWAITABLE: Final = object()
"""What a decorated function's first attempt stands for when it returned an awaitable."""


@attrs.frozen
class RetryPolicy:
    """
    Retries with exponential backoff and jitter, for conflicts and transient errors.

    The *n*-th retry waits ``min(base_delay * 2 ** (n - 1), max_delay)``
    seconds, plus, with *jitter*, a random extra of up to *base_delay*, so
    that writers that collided once do not collide again in lockstep. The defaults
    give 3 retries after the first attempt, waiting about 50, 100 and 200 ms.

    A `Repository` uses one policy for two things: a `ConcurrencyError` is
    retried by reloading the aggregate and re-running the command; a
    transient `StoreUnavailableError` during an append by re-sending the
    *same* append. The policy is also a decorator for a host's own service
    functions that load, decide and save, sync or async::

        @RetryPolicy(max_retries=5)
        def approve(document_id: str) -> None: ...

        @RetryPolicy(max_retries=5)
        async def reject(document_id: str) -> None: ...

    Args:
        max_retries: Retries after the first attempt (0: no retry).
        base_delay: Seconds before the first retry.
        max_delay: Upper bound on the exponential part of a wait, in seconds.
        jitter: Add a random extra of up to *base_delay* to each wait.
        sleep: How to wait; tests inject a recorder to stay fast.
        async_sleep: How to wait on the async path (`acall`, an
            `AsyncRepository`, a decorated ``async def``); an awaitable
            like `asyncio.sleep`, its default.

    Raises:
        ConfigError: A negative count or delay, or *max_delay* below *base_delay*.
    """

    max_retries: int = attrs.field(default=3, validator=_retry_count)
    base_delay: float = attrs.field(default=0.05, validator=_non_negative)
    max_delay: float = attrs.field(default=2.0, validator=_non_negative)
    jitter: bool = True
    sleep: Callable[[float], None] = attrs.field(
        default=time.sleep, eq=False, repr=False
    )
    async_sleep: Callable[[float], Awaitable[None]] = attrs.field(
        default=asyncio.sleep, eq=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        if self.max_delay < self.base_delay:
            raise ConfigError(
                f"RetryPolicy.max_delay ({self.max_delay}) must be at least "
                f"base_delay ({self.base_delay})"
            )

    @property
    def max_attempts(self) -> int:
        """The first attempt plus the retries."""
        return self.max_retries + 1

    def delays(self) -> tuple[float, ...]:
        """
        Return the nominal wait before each retry, without jitter.

        Example:
            >>> RetryPolicy().delays()
            (0.05, 0.1, 0.2)
        """
        return tuple(
            min(self.base_delay * 2**retry, self.max_delay)
            for retry in range(self.max_retries)
        )

    def call(
        self,
        fn: Attempt[T],
        *,
        retry_on: tuple[type[BaseException], ...] = (ConcurrencyError,),
        on_error: Callable[[BaseException, int], None] | None = None,
        give_up_on: tuple[type[BaseException], ...] = (),
    ) -> T:
        """
        Call *fn* until it returns, retrying the errors in *retry_on*.

        Errors not in *retry_on* propagate at once. When the attempts run
        out, the last error is raised; a `ConcurrencyError` then carries the
        number of attempts in its ``attempts`` attribute.

        Args:
            fn: What to run; it is called again, whole, on each retry.
            retry_on: The error types worth another attempt.
            on_error: Called with every error of *retry_on* types and its
                attempt number (1 for the first), the last one included.
            give_up_on: Error types never retried, even if they are also
                *retry_on* types.

        Returns:
            What *fn* returned.
        """
        attempts = _Attempts(retry_on, on_error)
        attempts.number = 1
        # The first attempt runs bare: most calls succeed at once, and
        # tenacity's machinery costs more than a call of *fn* often does.
        try:
            return fn()
        except retry_on as exc:
            attempts.failed(exc)
            first: BaseException | None = exc
        retrying = tenacity.Retrying(
            sleep=self.sleep, **self._tenacity(retry_on, give_up_on)
        )

        def attempt() -> T:
            nonlocal first
            if first is not None:  # attempt 1 again, for tenacity to judge
                error, first = first, None
                raise error
            attempts.number += 1
            try:
                return fn()
            except retry_on as exc:
                attempts.failed(exc)
                raise

        try:
            return retrying(attempt)
        except ConcurrencyError as exc:
            attempts.finish(exc)
            raise

    async def acall(
        self,
        fn: AsyncAttempt[T],
        *,
        retry_on: tuple[type[BaseException], ...] = (ConcurrencyError,),
        on_error: Callable[[BaseException, int], None] | None = None,
        give_up_on: tuple[type[BaseException], ...] = (),
    ) -> T:
        """
        Await *fn()* until it returns, retrying the errors in *retry_on*: `call`'s async twin.

        Waits between attempts with *async_sleep*, so other tasks run
        meanwhile. Cancelling the caller cancels the attempt or the wait in
        progress, and nothing is retried after it.

        Args:
            fn: Returns the awaitable to run; it is called again, whole, on
                each retry.
            retry_on: The error types worth another attempt.
            on_error: As for `call`.
            give_up_on: As for `call`.

        Returns:
            What *fn()* returned.
        """
        attempts = _Attempts(retry_on, on_error)
        attempts.number = 1
        try:  # bare, as in `call`
            return await fn()
        except retry_on as exc:
            attempts.failed(exc)
            first: BaseException | None = exc
        retrying = tenacity.AsyncRetrying(
            sleep=self.async_sleep, **self._tenacity(retry_on, give_up_on)
        )

        async def attempt() -> T:
            nonlocal first
            if first is not None:  # attempt 1 again, for tenacity to judge
                error, first = first, None
                raise error
            attempts.number += 1
            try:
                return await fn()
            except retry_on as exc:
                attempts.failed(exc)
                raise

        try:
            return await retrying(attempt)
        except ConcurrencyError as exc:
            attempts.finish(exc)
            raise

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """
        Decorate *fn* so that a `ConcurrencyError` re-runs it, per this policy.

        An ``async def`` is retried with `acall`, awaiting *async_sleep*
        between attempts, and so is a plain function that returns an
        awaitable (an ``async def`` behind a decorator that does not know
        coroutines): the decorated call then returns an awaitable that
        awaits it, retried. Each conflict is logged at WARNING on the
        ``eventstore.retry`` logger.
        """
        log = functools.partial(log_conflict, _log, max_attempts=self.max_attempts)
        # An object whose __call__ is an async def is one too.
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            type(fn).__call__
        ):
            coroutine_function = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def retried_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self.acall(
                    functools.partial(coroutine_function, *args, **kwargs),
                    on_error=log,
                )

            return cast(Callable[P, T], retried_async)

        @functools.wraps(fn)
        def retried(*args: P.args, **kwargs: P.kwargs) -> T:
            made: list[Awaitable[Any]] = []

            def attempt() -> Any:
                outcome = fn(*args, **kwargs)
                if inspect.isawaitable(outcome):
                    # An async def behind a decorator that is not: its
                    # errors come when it is awaited, so the retries must
                    # await it too.
                    made.append(outcome)
                    return _AWAITABLE
                return outcome

            result = self.call(attempt, on_error=log)
            if result is not _AWAITABLE:
                return cast(T, result)

            def next_attempt() -> Awaitable[Any]:
                return made.pop() if made else cast(Awaitable[Any], fn(*args, **kwargs))

            return cast(T, self.acall(next_attempt, on_error=log))

        return retried

    def _tenacity(
        self,
        retry_on: tuple[type[BaseException], ...],
        give_up_on: tuple[type[BaseException], ...] = (),
    ) -> dict[str, Any]:
        """Return the arguments of tenacity's `Retrying` that both paths share."""
        retry: tenacity.retry_base = tenacity.retry_if_exception_type(retry_on)
        if give_up_on:
            retry = retry & tenacity.retry_if_not_exception_type(give_up_on)
        return {
            "stop": tenacity.stop_after_attempt(self.max_attempts),
            "wait": self._wait(),
            "retry": retry,
            "reraise": True,
        }

    def _wait(self) -> tenacity.wait.wait_base:
        backoff = tenacity.wait_exponential(
            multiplier=self.base_delay, max=self.max_delay
        )
        if self.jitter:
            return _AtMostTheLongestWait(
                backoff + tenacity.wait_random(0, self.base_delay)
            )
        return backoff


@attrs.frozen
class _AtMostTheLongestWait(tenacity.wait.wait_base):
    """*wait*, never longer than `MAX_SECONDS`: jitter adds up to *base_delay* on top of *max_delay*."""

    wait: tenacity.wait.wait_base

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return min(self.wait(retry_state), MAX_SECONDS)


@attrs.define
class _Attempts:
    """The attempts of one retried call: counted, reported, and stamped on the last conflict."""

    retry_on: tuple[type[BaseException], ...]
    on_error: Callable[[BaseException, int], None] | None
    number: int = 0

    def failed(self, error: BaseException) -> None:
        """Report an error of a retried type to *on_error*."""
        if self.on_error is not None:
            self.on_error(error, self.number)

    def finish(self, error: ConcurrencyError) -> None:
        """Record on a conflict that ends the call how many attempts were made."""
        if isinstance(error, self.retry_on):
            error.attempts = self.number
            error.args = (error.stream_id, error.expected, error.actual, self.number)


def log_conflict(
    logger: logging.Logger, error: BaseException, attempt: int, *, max_attempts: int
) -> None:
    """Log a retried conflict at WARNING with its stream, versions and attempt."""
    if isinstance(error, ConcurrencyError):
        logger.warning(
            "conflict on stream %r: expected version %s, actual %s (attempt %d of %d)",
            error.stream_id,
            error.expected,
            error.actual,
            attempt,
            max_attempts,
            extra={
                "stream_id": error.stream_id,
                "expected_version": str(error.expected),
                "actual_version": error.actual,
                "attempt": attempt,
            },
        )
