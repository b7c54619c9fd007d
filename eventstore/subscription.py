# Generated from subscription_async.py by tools/async_to_sync.py: edit that file, not
# this one, then run `python tools/async_to_sync.py`.
"""`Subscription`: a named, durable consumer of the global log, with its checkpoint in the store."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from threading import Event
from typing import Final

import attrs

from eventstore._subscribing import (
    CatchUpProgress,
    Delivery,
    Handler,
    LogFilter,
    LogListener,
    LogPage,
    OnError,
    ParkedEvent,
    ResetHook,
    StoreOutage,
    SubscriptionLock,
    SubscriptionState,
    SubscriptionStatus,
    check_batch_size,
    check_progress,
    describe_error,
    describe_subscription,
    refuse_awaitable,
    refuse_coroutine_function,
    seconds_since,
)
from eventstore._validation import (
    check_int,
    check_log_position,
    check_name,
    check_seconds,
)
from eventstore.errors import (
    ConfigError,
    HandlerTransactionError,
    InvalidArgumentTypeError,
    PoolExhaustedError,
    StoreClosedError,
    StoreTimeoutError,
    StoreUnavailableError,
    SubscriptionConflictError,
    SubscriptionFailedError,
)
from eventstore.events import LogPosition, RecordedEvent
from eventstore.retry import RetryPolicy
from eventstore.store import EventStore

__all__ = ["Subscription"]

_log = logging.getLogger("eventstore.subscription")

_STOP_CHECK: Final = 0.25
"""Most seconds a listening runner waits before it checks its stop event."""

BEHIND_CAP: Final = 1_000_000
"""`status` counts the events behind up to this many."""

_STORE_TROUBLE: Final = (
    SubscriptionConflictError,
    StoreUnavailableError,
    StoreTimeoutError,
    StoreClosedError,
)
"""The store's failures, as opposed to the handler's or the caller's."""

_NOT_THE_HANDLERS: Final = (
    SubscriptionConflictError,
    StoreUnavailableError,
    PoolExhaustedError,
    StoreClosedError,
)
"""What a batch's delivery may raise that no event of the batch is to blame for.

A statement timeout is not among them: in a transactional handler it is
the handler's own query's, which one event may well cause.
"""


@attrs.define
class _Pass:
    """How far one pass over the log has handed events over, and how far its checkpoint is saved."""

    saved: LogPosition | None
    reached: LogPosition | None
    retry: RetryPolicy
    """The handler's retries in this pass: in a runner's, waits its stop event ends."""
    saved_at: float = attrs.field(factory=time.monotonic)


class _Stopped(BaseException):
    """
    A runner's stop event was set while a failing handler waited to be retried.

    A `BaseException`: no handler's error, so nothing parks or fails on it.
    """


def _ended(stop: Event, store: EventStore) -> bool:
    """Whether a runner's waits end now: its *stop* is set, or its *store* closed."""
    return stop.is_set() or store.closed


def _wait_unless_ended(stop: Event, seconds: float, store: EventStore) -> None:
    """
    Wait *seconds*, or less: until *stop* is set or *store* is closed.

    A closed store is seen within `_STOP_CHECK`: its close() has no way to
    wake a runner's wait, and a runner waiting out a long poll kept its lock
    and its sessions that long after the store had closed.
    """
    deadline = time.monotonic() + seconds
    while not _ended(stop, store):
        left = deadline - time.monotonic()
        if left <= 0:
            return
        stop.wait(min(left, _STOP_CHECK))


def _stoppable(policy: RetryPolicy, stop: Event, store: EventStore) -> RetryPolicy:
    """
    Return *policy* with its waits between attempts ended by *stop* or a closed *store*.

    A runner told to stop does not wait out a failing handler's retries
    (with a long policy, minutes): the wait ends, `_Stopped` is raised, and
    the pass ends as it does between two pages, what the handler has not
    taken left for the next (on a closed store, saving the checkpoint then
    raises `StoreClosedError`). A wait of the caller's own (injected into
    the policy) runs, then *stop* is checked.
    """
    wait = policy.sleep

    def sleep(seconds: float) -> None:
        if wait is time.sleep:
            _wait_unless_ended(stop, seconds, store)
        else:
            wait(seconds)
        if _ended(stop, store):
            raise _Stopped

    return attrs.evolve(policy, sleep=sleep)


@attrs.define
class _Reporter:
    """Calls a catch-up's *progress* callback, at most every *every* seconds, and at the end."""

    callback: Callable[[CatchUpProgress], object]
    every: float
    behind: int
    started: float = attrs.field(factory=time.monotonic)
    last: float = attrs.field(factory=time.monotonic)
    reported: int = -1

    def handled(self, count: int, *, last: bool) -> None:
        now = time.monotonic()
        if count == self.reported or (not last and now - self.last < self.every):
            return
        self.last = now
        self.reported = count
        elapsed = now - self.started
        self.callback(
            CatchUpProgress(
                handled=count,
                remaining=max(self.behind - count, 0),
                events_per_second=count / elapsed if elapsed > 0 else 0.0,
                elapsed=elapsed,
            )
        )


class Subscription:
    """
    A named, durable consumer of the global log: it hands new events to a handler, in batches.

    It reads the log from its checkpoint, which lives in the store, gives
    each batch to *handler*, and moves the checkpoint past it. The
    log's order is commit-safe, so an event that commits late is never
    skipped. A handler error is retried per *retry_policy*; an event it
    still fails on stops the subscription there (`OnError.STOP`), its
    checkpoint just before it.

    Delivery is at least once by default: the checkpoint is saved after the
    handler, at most every *checkpoint_interval* seconds, so after a crash
    what was handled since the last save comes again, and a handler
    deduplicates by ``(stream_id, version)``. With ``delivery=Delivery.TRANSACTIONAL``
    (PostgreSQL) the handler is called as ``handler(events, conn)`` inside a
    transaction that also moves the checkpoint: what it writes through
    *conn* is kept exactly once.

    `run` makes the runner the one active instance of its name (a session
    advisory lock on PostgreSQL); other runners of the name wait as
    standbys and take over when it stops or its connection dies.

    Args:
        store: The store whose log it follows, and that keeps its checkpoint.
        name: Its name, the key of its checkpoint: 1 to 255 characters.
        handler: Called with each batch (a list of `RecordedEvent`, in log
            order, a new list on every call: the handler may change it), and
            a connection in transactional delivery.
        types: Only events of these types reach the handler.
        stream_prefix: Only events of streams whose id starts with this.
        group: ``(index, members)``: this runner takes the streams of one
            member of a consumer group, with a checkpoint of its own.
        batch_size: Most events read, and handed over, at once (1-10,000).
        delivery: At least once (the default), or transactional.
        on_error: What to do with an event the handler keeps failing on:
            stop there (`OnError.STOP`), or park it and go on (`OnError.PARK`).
        retry_policy: How often to retry a failing handler; default
            ``RetryPolicy()``.
        poll_interval: Seconds `run` waits before looking at the log again
            when it found nothing new.
        checkpoint_interval: At least once: the most seconds a pass over
            the log (a `catch_up`, or a turn of `run`) goes without saving
            its checkpoint; it is saved anyway when the pass ends, fails or is
            interrupted (a cancelled task, Ctrl-C).
            A crash hands over again at most what was handled in that time.
            ``0`` saves it after every batch. Transactional delivery moves
            it with every batch, whatever this says.

    Raises:
        InvalidArgumentError: A bad name, filter or batch size, a handler
            that is not callable, a *retry_policy* that is not a `RetryPolicy`.
        ConfigError: A bad poll interval, transactional delivery on a store
            without transactions (every store but PostgreSQL's), or
            `OnError.PARK` on a store that cannot park events.

    Example:
        >>> from eventstore import InMemoryEventStore, Subscription, NewEvent
        >>> store = InMemoryEventStore()
        >>> _ = store.append("order-1", [NewEvent("order.placed", {"total": 5})])
        >>> seen = []
        >>> orders = Subscription(store, "totals", seen.extend)
        >>> orders.catch_up()
        1
        >>> [event.data["total"] for event in seen]
        [5]
    """

    def __init__(
        self,
        store: EventStore,
        name: str,
        handler: Handler,
        *,
        types: Sequence[str] | None = None,
        stream_prefix: str | None = None,
        group: tuple[int, int] | None = None,
        batch_size: int = 500,
        delivery: Delivery = Delivery.AT_LEAST_ONCE,
        on_error: OnError = OnError.STOP,
        retry_policy: RetryPolicy | None = None,
        poll_interval: float = 0.5,
        checkpoint_interval: float = 1.0,
    ) -> None:
        if not isinstance(store, EventStore):
            raise InvalidArgumentTypeError(
                f"store must be an EventStore, got {type(store).__name__}"
            )
        if not callable(handler):
            raise InvalidArgumentTypeError("handler must be callable")
        refuse_coroutine_function(handler, "handler")
        if not isinstance(delivery, Delivery):
            raise InvalidArgumentTypeError(
                f"delivery must be a Delivery member, got {delivery!r}"
            )
        if (
            delivery is Delivery.TRANSACTIONAL
            and type(store)._deliver_in_transaction
            is EventStore._deliver_in_transaction
        ):
            raise ConfigError(
                f"{type(store).__name__} has no transactions to share with a "
                "handler: transactional delivery needs PostgreSQL"
            )
        if not isinstance(on_error, OnError):
            raise InvalidArgumentTypeError(
                f"on_error must be an OnError member, got {on_error!r}"
            )
        if on_error is OnError.PARK and type(store)._park is EventStore._park:
            raise ConfigError(f"{type(store).__name__} does not store parked events")
        self.store = store
        self.name = check_name(name, "subscription name")
        self.handler = handler
        self.filter = LogFilter.of(types, stream_prefix, group)
        self.batch_size = check_batch_size(batch_size)
        self.delivery = delivery
        self.on_error = on_error
        if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
            raise InvalidArgumentTypeError(
                f"retry_policy must be a RetryPolicy or None, got {retry_policy!r}"
            )
        self.retry_policy = RetryPolicy() if retry_policy is None else retry_policy
        self.poll_interval = check_seconds(poll_interval, "poll_interval")
        self.checkpoint_interval = check_seconds(
            checkpoint_interval, "checkpoint_interval", zero=True
        )
        # A transactional handler's own statements fail as EventStoreError
        # (the store's hooks see to it), so a timeout there is the store's
        # own statement's: the checkpoint's row held by a reset, say.
        self._not_the_handlers = (
            _STORE_TROUBLE if delivery is Delivery.TRANSACTIONAL else _NOT_THE_HANDLERS
        )
        self._state = SubscriptionState.IDLE
        self._handled = 0
        self._last_error: str | None = None
        self._failed_event: tuple[str, int] | None = None
        # A running runner's checkpoint and when it was last read from the
        # store: what the runner moves it to is known without a round trip.
        self._known: tuple[LogPosition | None, float] | None = None
        self._outage = StoreOutage(_log)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self._state.value}>"

    @property
    def _described(self) -> str:
        """The subscription as log lines name it: with its member in a consumer group."""
        return describe_subscription(self.name, self.filter.member)

    @property
    def state(self) -> SubscriptionState:
        """Where the runner is now."""
        return self._state

    def catch_up(
        self,
        *,
        progress: Callable[[CatchUpProgress], object] | None = None,
        progress_every: float = 1.0,
    ) -> int:
        """
        Handle every event visible in the log now, then return.

        Args:
            progress: Called with a `CatchUpProgress` every *progress_every*
                seconds, and once at the end: for long replays.
            progress_every: Seconds between two progress reports (0: after
                every batch).

        Returns:
            How many events the handler took (parked ones not counted) and
            the checkpoint moved past.

        Raises:
            SubscriptionFailedError: The handler kept failing on an event;
                the checkpoint is saved just before it (unless the store
                fails then too: then where it was last saved), and the
                handler's last error is the ``__cause__``.
            SubscriptionConflictError: Another runner moved the checkpoint.
            InvalidArgumentError: *progress* is not callable, or
                *progress_every* not a number of seconds >= 0 (before
                anything is handled).
        """
        check_progress(progress, progress_every)
        return self._catch_up(progress, progress_every, None, None)

    def _catch_up(
        self,
        progress: Callable[[CatchUpProgress], object] | None,
        progress_every: float,
        stop: Event | None,
        lock: SubscriptionLock | None,
    ) -> int:
        if self._state is SubscriptionState.FAILED:
            # A new attempt: the old failure is history (the log has it).
            self._state = SubscriptionState.IDLE
            self._last_error = self._failed_event = None
        position = self._checkpoint(trust=stop is not None)
        handled_before = self._handled
        report = None
        if progress is not None:
            behind, _ = self.store._log_behind(position, self.filter, BEHIND_CAP)
            report = _Reporter(progress, progress_every, behind)
        this_pass = _Pass(
            saved=position,
            reached=position,
            retry=self.retry_policy
            if stop is None
            else _stoppable(self.retry_policy, stop, self.store),
        )
        try:
            while True:
                # Every backend's way: a store closed meanwhile ends the pass,
                # on memory too, whose close empties the log.
                self.store._check_open()
                page = self.store._read_log_page(
                    this_pass.reached, self.batch_size, self.filter
                )
                if page.scanned_to is not None:
                    self._deliver(this_pass, page)
                if report is not None:
                    report.handled(self._handled - handled_before, last=page.at_end)
                # A page short of its limit saw all there was: what commits
                # meanwhile is the next pass's, which `run` starts when woken.
                # A runner's pass also ends when its lock's session has: a
                # standby may have taken over, and one runner is active.
                if (
                    page.at_end
                    or (stop is not None and stop.is_set())
                    or (lock is not None and not lock.alive())
                ):
                    self._save(this_pass)
                    if self._known is not None:
                        self._known = (this_pass.saved, self._known[1])
                    return self._handled - handled_before
        except _Stopped:
            # Told to stop while a failing handler waited for its retry:
            # saved as between two pages; the event it failed on comes again.
            self._save(this_pass)
            self._known = None
            return self._handled - handled_before
        except _STORE_TROUBLE:
            # A conflict, an outage: the next pass reads the checkpoint from
            # the store; what this one handled and did not save comes again,
            # as at-least-once delivery allows.
            self._known = None
            raise
        except BaseException:
            # The handler failed on an event, or the pass was interrupted (a
            # cancelled task, Ctrl-C): what the handler took is saved, so the
            # checkpoint stays just before what it did not, unless the store
            # fails too (then that comes again).
            self._known = None
            try:
                self._save(this_pass)
            except Exception as exc:  # what is raised is the first error
                _log.warning(
                    "subscription %s could not save its checkpoint (%s): what it "
                    "handled since the last save comes again",
                    self._described,
                    exc,
                )
            raise

    def _checkpoint(self, *, trust: bool) -> LogPosition | None:
        """
        Return the checkpoint: from the store, or, for a runner's pass, as last known.

        A runner holding the lock is the only one that moves the checkpoint
        in the normal course, so between passes it trusts what it moved it
        to, and reads the store again every *poll_interval*: a `reset` or a
        `catch_up` from elsewhere is seen by then, or sooner by the
        compare-and-set of the runner's next move, which then fails.
        """
        known = self._known
        if (
            trust
            and known is not None
            and time.monotonic() - known[1] < self.poll_interval
        ):
            return known[0]
        position = self.store._load_checkpoint(self.name, self.filter.member)
        self._known = (position, time.monotonic()) if trust else None
        return position

    def reset(
        self,
        to: LogPosition | None = None,
        *,
        on_reset: ResetHook | None = None,
    ) -> None:
        """
        Move the checkpoint to *to* (``None``: the start of the log), to handle events again.

        The next `catch_up` (or a running runner's next turn) goes on from
        there; give it a *progress* callback to follow a long replay. Parked
        events stay parked.

        Args:
            to: The new checkpoint; ``None`` for the log's start.
            on_reset: Clears what the handler built. With transactional
                delivery it is called as ``on_reset(conn)`` in the
                transaction that moves the checkpoint, so a projection and
                its checkpoint are reset together; otherwise as
                ``on_reset()``, before the checkpoint moves.

        Raises:
            InvalidArgumentError: *to* is not a `LogPosition` or ``None``, or
                *on_reset* is not callable.
        """
        check_log_position(to, "to")
        if on_reset is not None and not callable(on_reset):
            raise InvalidArgumentTypeError(
                f"on_reset must be callable or None, got {on_reset!r}"
            )
        self.store._check_open()  # before on_reset clears anything
        self._known = None
        work = None
        if on_reset is not None:
            reset_hook = on_reset
            if self.delivery is Delivery.TRANSACTIONAL:

                def work(conn: object) -> None:
                    self._call(reset_hook, conn)

            else:
                self._call(reset_hook)
        self.store._reset_checkpoint(self.name, self.filter.member, to, work)

    def run(self, stop: Event) -> None:
        """
        Follow the log until *stop* is set, as the one active runner of its name.

        While another runner of the name is active, this one waits as a
        standby (`SubscriptionState.STANDBY`) and tries again every
        *poll_interval*; it takes over when the other stops or its session
        dies. Active, it catches up, then waits for new events: woken by the
        store's appends (PostgreSQL's LISTEN/NOTIFY, on a connection of its
        own) or, at the latest, after *poll_interval*. After every wake-up it
        looks once more a moment later, and after every reconnect of its
        listening session it reads the log again, so a lost notification
        costs latency, never an event. A store that cannot be reached, or
        times out (a full pool, a statement timeout), is retried at the next
        poll. Setting *stop* also ends a wait between a failing handler's
        attempts: the event it failed on is neither parked nor failed, and
        comes again at the next run.

        Raises:
            SubscriptionFailedError: As for `catch_up`; the runner then stops.
        """
        lock: SubscriptionLock | None = None
        listener: LogListener | None = None
        woken = False
        self._state = SubscriptionState.STANDBY
        try:
            while not stop.is_set():
                heard = listener
                lock, listener = self._turn(lock, listener, stop)
                # Just woken, or just listening: look again once the store's
                # notify window is over, for the appends in it that sent no
                # NOTIFY (or sent it before this runner listened).
                fresh = listener is not None and listener is not heard
                timeout = (
                    self.store._notify_window if woken or fresh else self.poll_interval
                )
                if lock is None:  # standing by
                    if listener is not None:
                        # Unread, its notifications would pile up on the
                        # server; a runner listens again when it takes over.
                        listener.close()
                        listener = None
                    self._sleep(stop, timeout)
                    woken = False
                else:
                    woken, listener = self._wait(stop, listener, timeout)
        finally:
            if listener is not None:
                listener.close()
            if lock is not None:
                lock.release()
            if self._state is not SubscriptionState.FAILED:
                self._state = SubscriptionState.STOPPED

    def _turn(
        self,
        lock: SubscriptionLock | None,
        listener: LogListener | None,
        stop: Event,
    ) -> tuple[SubscriptionLock | None, LogListener | None]:
        """Keep or take the lock and, holding it, listen and catch up."""
        try:
            self.store._check_open()  # a standby's too: run() ends
            lock = self._keep_lock(lock)
            if lock is not None:
                if listener is None:
                    # Listening before reading: an append after the read
                    # wakes this runner.
                    listener = self.store._listen()
                # Between two pages it checks *stop*: a long backlog does not
                # hold up a shutdown.
                self._catch_up(None, 0.0, stop, lock)
                if not lock.alive():
                    # The pass ended on a lost lock: stand by now, or take
                    # it again, rather than run on for a poll without it.
                    lock = self._keep_lock(lock)
            self._outage.passed(self._described)
        except SubscriptionConflictError as conflict:
            # Another runner moved the checkpoint: it took over while this
            # one's lock was dying. The next turn checks the lock.
            _log.warning("%s; checking this runner's lock", conflict)
        except StoreUnavailableError as exc:
            self._outage.failed(self._described, "cannot reach the store", exc)
        except StoreTimeoutError as exc:
            # A full pool or a statement timeout: the runner waits its poll
            # and tries again, as for an unreachable store.
            self._outage.failed(self._described, "timed out on the store", exc)
        except BaseException:
            # run() ends, and never gets back what this turn took: the
            # session of the lock must end now, or no standby could take over.
            if listener is not None:
                listener.close()
            if lock is not None:
                lock.release()
            raise
        return lock, listener

    def _wait(
        self, stop: Event, listener: LogListener | None, timeout: float
    ) -> tuple[bool, LogListener | None]:
        """Wait for a notification or *timeout*; return whether woken, and the listener kept."""
        if listener is None:
            self._sleep(stop, timeout)
            return False, None
        deadline = time.monotonic() + timeout
        try:
            # In slices, so that a set *stop*, or a closed store, ends the wait soon.
            while (left := deadline - time.monotonic()) > 0 and not _ended(
                stop, self.store
            ):
                if listener.wait(min(left, _STOP_CHECK)):
                    return True, listener
        except StoreUnavailableError as exc:
            # Reconnected at the next turn, which reads the log again.
            _log.warning("subscription %s stopped hearing: %s", self._described, exc)
            return False, None
        return False, listener

    def _sleep(self, stop: Event, timeout: float) -> None:
        """Wait *timeout* seconds, or until *stop* is set or the store closed."""
        _wait_unless_ended(stop, timeout, self.store)

    def _keep_lock(self, lock: SubscriptionLock | None) -> SubscriptionLock | None:
        """Return the lock still held, or newly taken; ``None`` to stand by."""
        if lock is not None:
            if lock.alive():
                return lock
            _log.warning("subscription %s lost its lock; standing by", self._described)
        # Another runner may have moved the checkpoint while this one had no lock.
        self._known = None
        lock = self.store._lock_subscription(self.name, self.filter.member)
        self._state = (
            SubscriptionState.STANDBY if lock is None else SubscriptionState.RUNNING
        )
        return lock

    def replay_parked(self) -> int:
        """
        Hand the parked events back to the handler, oldest first, one at a time.

        An event the handler now takes is unparked (in the handler's
        transaction, with transactional delivery); one it still fails on
        stays parked, with its new error and the attempts added. The
        checkpoint does not move.

        Returns:
            How many parked events were handled and unparked.
        """
        member = self.filter.member
        after: LogPosition | None = None
        replayed = 0
        while True:
            self.store._check_open()
            parked = self.store._parked(self.name, member, after, self.batch_size)
            if not parked:
                return replayed
            for item in parked:
                after = item.event.position
                try:
                    taken = self._replay(item.event)
                except (*self._not_the_handlers, HandlerTransactionError):
                    raise  # the store's trouble (it stays parked as it was), or the handler's misuse
                except Exception as exc:  # the handler's: it stays parked
                    self._park(item.event, exc)
                else:
                    replayed += taken

    def parked(
        self, *, limit: int = 100, after: LogPosition | None = None
    ) -> list[ParkedEvent]:
        """
        Return up to *limit* of the events this subscription parked, in log order.

        Args:
            limit: Most events to return.
            after: Only events after this log position: the last event's
                ``position`` of the previous page, to read the next.

        Example:
            Every parked event, page by page::

                page = subscription.parked(limit=100)
                while page:
                    ...
                    page = subscription.parked(
                        limit=100, after=page[-1].event.position
                    )

        """
        check_int(limit, "limit", minimum=1)
        self.store._check_open()
        return self.store._parked(
            self.name, self.filter.member, check_log_position(after), limit
        )

    def status(self) -> SubscriptionStatus:
        """Return where the subscription is, and how far behind the log."""
        self.store._check_open()
        member = self.filter.member
        position = self.store._load_checkpoint(self.name, member)
        behind, oldest = self.store._log_behind(position, self.filter, BEHIND_CAP)
        return SubscriptionStatus(
            name=self.name,
            member=member,
            state=self._state,
            position=position,
            events_behind=behind,
            seconds_behind=seconds_since(oldest, datetime.now(UTC)),
            handled=self._handled,
            last_error=self._last_error,
            failed_event=self._failed_event,
            parked=self.store._parked_count(self.name, member),
            held_by=self.store._log_holder(),
        )

    def _deliver(self, this_pass: _Pass, page: LogPage) -> None:
        """Hand *page* to the handler and move *this_pass* past it."""
        assert page.scanned_to is not None  # noqa: S101  # callers pass non-empty pages
        if page.events:
            try:
                self._handle(page.events, this_pass, page.scanned_to)
            except self._not_the_handlers:
                raise  # the store's trouble, not the handler's
            except HandlerTransactionError as exc:
                # Its writes may have committed apart from the checkpoint:
                # handed over again, one by one or retried, they would be
                # written twice. Stopped, the error says why.
                self._fail(page.events[0], exc)
                raise SubscriptionFailedError(
                    self.name, page.events[0].stream_id, page.events[0].version
                ) from exc
            except Exception:  # the handler's, whatever it is: isolate the event
                self._deliver_one_by_one(this_pass, page.events)
            else:
                self._handled += len(page.events)
        self._advance(this_pass, page.scanned_to)

    def _deliver_one_by_one(
        self, this_pass: _Pass, events: list[RecordedEvent]
    ) -> None:
        """Hand *events* over one at a time, to stop exactly at the one the handler fails on."""
        for event in events:
            try:
                self._handle([event], this_pass, event.position)
            except self._not_the_handlers:
                raise  # the store's trouble, not the handler's
            except Exception as exc:  # the handler's, whatever it is
                if self.on_error is OnError.PARK and not isinstance(
                    exc, HandlerTransactionError
                ):
                    self._park(event, exc, this_pass)
                    continue
                self._fail(event, exc)
                raise SubscriptionFailedError(
                    self.name, event.stream_id, event.version
                ) from exc
            self._handled += 1
            self._advance(this_pass, event.position)

    def _park(
        self, event: RecordedEvent, exc: Exception, this_pass: _Pass | None = None
    ) -> None:
        """Park *event* with the handler's error; in a pass, move *this_pass* past it too."""
        error = describe_error(exc)
        _log.warning(
            "subscription %s parked event %d of stream %r: %s",
            self._described,
            event.version,
            event.stream_id,
            error,
            extra={
                "subscription": self.name,
                "member": self.filter.member,
                "stream_id": event.stream_id,
            },
        )
        member, attempts = self.filter.member, self.retry_policy.max_attempts
        if this_pass is None:  # a replay's: the checkpoint stays
            self.store._park(
                self.name, member, event, error, attempts, still_parked=True
            )
            return
        if self.delivery is Delivery.TRANSACTIONAL:
            self.store._park_in_transaction(
                self.name, member, event, error, attempts, expected=this_pass.saved
            )
            this_pass.saved = this_pass.reached = event.position
            this_pass.saved_at = time.monotonic()
            return
        self.store._park(self.name, member, event, error, attempts)
        # Saved at once: an event parked, then handed over again after a
        # crash, could be taken and still stay parked.
        this_pass.reached = event.position
        self._save(this_pass)

    def _fail(self, event: RecordedEvent, exc: Exception) -> None:
        self._state = SubscriptionState.FAILED
        self._last_error = describe_error(exc)
        self._failed_event = (event.stream_id, event.version)
        _log.error(
            "subscription %s stopped at event %d of stream %r: %s",
            self._described,
            event.version,
            event.stream_id,
            self._last_error,
            extra={
                "subscription": self.name,
                "member": self.filter.member,
                "stream_id": event.stream_id,
            },
        )

    def _handle(
        self,
        events: list[RecordedEvent],
        this_pass: _Pass,
        new: LogPosition,
    ) -> None:
        """
        Run the handler on *events*, retried per the policy.

        With transactional delivery the checkpoint moves to *new* in the
        handler's transaction, and *this_pass* with it.
        """
        # A list of its own on every attempt: what the handler does to it
        # (drains it, sorts it) must not change what is retried, isolated
        # or counted.
        if self.delivery is not Delivery.TRANSACTIONAL:
            this_pass.retry.call(
                lambda: self._call_handler(list(events)),
                retry_on=(Exception,),
                give_up_on=(SubscriptionConflictError, HandlerTransactionError),
            )
            return

        def work(conn: object) -> None:
            self._call_handler(list(events), conn)

        this_pass.retry.call(
            lambda: self.store._deliver_in_transaction(
                self.name, self.filter.member, this_pass.saved, new, work
            ),
            retry_on=(Exception,),
            give_up_on=(SubscriptionConflictError, HandlerTransactionError),
        )
        this_pass.saved = this_pass.reached = new
        this_pass.saved_at = time.monotonic()

    def _call_handler(self, *args: object) -> None:
        self._call(self.handler, *args)

    def _call(self, function: Callable[..., object], *args: object) -> None:
        outcome = function(*args)
        if inspect.isawaitable(outcome):
            refuse_awaitable(function, outcome)

    def _replay(self, event: RecordedEvent) -> bool:
        """Hand one parked *event* to the handler, retried, and unpark it; return whether it was handed over."""
        member = self.filter.member
        if self.delivery is Delivery.TRANSACTIONAL:

            def work(conn: object) -> None:
                self._call_handler([event], conn)

            # False when another replay (or this one's lost commit, retried)
            # unparked it first: it is applied once.
            return self.retry_policy.call(
                lambda: self.store._replay_in_transaction(
                    self.name, member, event.stream_id, event.version, work
                ),
                retry_on=(Exception,),
                give_up_on=(HandlerTransactionError,),
            )
        self.retry_policy.call(
            lambda: self._call_handler([event]), retry_on=(Exception,)
        )
        self.store._unpark(self.name, member, event.stream_id, event.version)
        return True

    def _advance(self, this_pass: _Pass, to: LogPosition) -> None:
        """Move *this_pass* to *to*; save it if the last save is *checkpoint_interval* old."""
        this_pass.reached = to
        if (
            self.delivery is Delivery.TRANSACTIONAL
            # A checkpoint still at the log's start is saved at once: a
            # reset meanwhile (which deletes it) can only be told from
            # "none yet" once there is one to delete.
            or this_pass.saved is None
            or time.monotonic() - this_pass.saved_at >= self.checkpoint_interval
        ):
            self._save(this_pass)

    def _save(self, this_pass: _Pass) -> None:
        """Move the stored checkpoint to where *this_pass* reached, if it is not there yet."""
        if this_pass.reached != this_pass.saved:
            assert this_pass.reached is not None  # noqa: S101  # it only moves forward
            # After an at-least-once handler, a move lost in a crash only
            # hands events over again; a transactional projection's moves
            # all stay durable, so none is ever handled twice.
            self.store._save_checkpoint(
                self.name,
                self.filter.member,
                this_pass.saved,
                this_pass.reached,
                durable=self.delivery is Delivery.TRANSACTIONAL,
            )
            this_pass.saved = this_pass.reached
        this_pass.saved_at = time.monotonic()
