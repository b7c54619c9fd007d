"""`Aggregate`'s handler table: which method an event reaches."""

from __future__ import annotations

import attrs

from eventstore import Aggregate, applies


@attrs.define
class Account(Aggregate):
    balance: int = 0

    @applies(int)
    def _deposited(self, amount: int) -> None:
        self.balance += amount


@attrs.define
class AuditedAccount(Account):
    seen: list[int] = attrs.field(factory=list)

    # Overridden without decorating it again: still the handler of int.
    def _deposited(self, amount: int) -> None:
        self.seen.append(amount)
        super()._deposited(amount)


def test_a_subclass_overriding_a_handler_gets_the_events() -> None:
    account = AuditedAccount(id="a-1")
    account.raise_event(5)
    assert (account.balance, account.seen) == (5, [5])
    base = Account(id="a-2")
    base.raise_event(3)
    assert base.balance == 3
