"""Ownership (supervisor/sharing/ownership.py): claims, renewals, losses and idle releases, on moto's DynamoDB."""

from __future__ import annotations

from helpers import ManualClock as Clock

from supervisor.sharing.lease_table import LeaseTable
from supervisor.sharing.ownership import Elsewhere, Local, Ownership

LEASE = 30.0


def container(dynamodb, name: str) -> tuple[Ownership, Clock]:
    clock = Clock()
    table = LeaseTable(dynamodb, "leases", name, f"https://sqs/inbox-{name}", LEASE, clock)
    ownership = Ownership(table, clock, on_lost=lambda lost: reported.setdefault(name, []).extend(lost))
    return ownership, clock


reported: dict[str, list[str]] = {}  # owner → workspaces `on_lost` was told of


def fence(claim: Local | Elsewhere) -> int:
    assert isinstance(claim, Local), claim
    return claim.fence


def test_a_workspace_is_claimed_once_and_commands_for_it_elsewhere_go_to_its_owners_inbox(dynamodb):
    a, _ = container(dynamodb, "a")
    b, _ = container(dynamodb, "b")
    first = fence(a.claim("acme/u1/site"))
    assert a.claim("acme/u1/site") == Local(fence=first)  # held: no new take
    assert b.claim("acme/u1/site") == Elsewhere("a", "https://sqs/inbox-a")
    assert isinstance(b.claim("beta/u1/site"), Local)


def test_a_lease_not_renewed_is_lost_and_reported_and_the_other_takes_it(dynamodb):
    a, a_clock = container(dynamodb, "a")
    b, b_clock = container(dynamodb, "b")
    reported.clear()
    first = fence(a.claim("acme/u1/site"))
    b.claim("acme/u1/site")  # b starts watching
    a_clock.now += LEASE / 3
    assert a.renew() == []
    b_clock.now += LEASE  # b saw a renewal: it has to watch a whole period again
    assert isinstance(b.claim("acme/u1/site"), Elsewhere)
    a_clock.now += LEASE  # a is stopped (SIGSTOP) and renews nothing
    b_clock.now += LEASE
    assert b.claim("acme/u1/site") == Local(fence=first + 1)
    assert a.renew() == ["acme/u1/site"] and not a.holds("acme/u1/site")  # nothing of a's may write there now
    assert reported == {"a": ["acme/u1/site"]}  # told to the loop


def test_idle_workspaces_are_released_after_a_lease_period_and_busy_ones_kept(dynamodb):
    a, clock = container(dynamodb, "a")
    b, _ = container(dynamodb, "b")
    a.claim("acme/u1/site")
    a.claim("beta/u1/site")
    assert a.release_idle(busy={"acme/u1/site"}) == []
    clock.now += LEASE
    assert a.release_idle(busy={"acme/u1/site"}) == ["beta/u1/site"]
    assert isinstance(b.claim("beta/u1/site"), Local)  # at once: released, not run out
    a.release_all()
    assert isinstance(b.claim("acme/u1/site"), Local)
