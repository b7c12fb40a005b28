"""Workspace leases on DynamoDB (supervisor/sharing/lease_table.py), on moto, with a clock per container."""

from __future__ import annotations

import time

import boto3
import pytest
from helpers import ManualClock as Clock

from supervisor.contract.lease_item import write_pending
from supervisor.sharing.lease_table import (
    RELEASED_ITEM_SECONDS,
    SAFETY_SECONDS,
    Holder,
    Lease,
    LeaseTable,
    create_table,
)
from supervisor.sharing.roster import Roster

LEASE = 20.0
WS = "acme/u1/site"


def container(dynamodb, name: str, start: float) -> tuple[LeaseTable, Clock]:
    clock = Clock(start)
    return LeaseTable(dynamodb, "leases", name, f"https://sqs/inbox-{name}", LEASE, clock), clock


def test_one_owner_and_a_takeover_only_after_a_whole_lease_unchanged_on_the_takers_clock(dynamodb):
    a, a_clock = container(dynamodb, "a", start=1_000_000.0)  # clocks far apart: offsets never matter
    b, b_clock = container(dynamodb, "b", start=5.0)
    lease = a.take(WS)
    assert isinstance(lease, Lease) and lease.held(a_clock())
    seen = b.take(WS)
    assert isinstance(seen, Holder) and seen.owner == "a" and seen.inbox == "https://sqs/inbox-a"
    b_clock.now += LEASE - 0.1
    assert isinstance(b.take(WS), Holder)  # not yet a whole lease period
    b_clock.now += 0.2
    taken = b.take(WS)
    assert isinstance(taken, Lease) and taken.fence == lease.fence + 1  # a new fencing token
    a_clock.now += 1
    assert a.renew(lease) is False and not lease.held(a_clock())  # a lost it, and knows


def test_a_renewal_resets_the_takers_watch(dynamodb):
    a, a_clock = container(dynamodb, "a", start=0.0)
    b, b_clock = container(dynamodb, "b", start=0.0)
    lease = a.take(WS)
    assert isinstance(lease, Lease)
    for _ in range(5):  # a renews every half lease; b keeps watching
        b.take(WS)
        a_clock.now += LEASE / 2
        b_clock.now += LEASE / 2
        assert a.renew(lease) is True
        assert isinstance(b.take(WS), Holder)
    b_clock.now += LEASE  # a stops renewing (dead): a whole lease period unchanged
    assert isinstance(b.take(WS), Lease)


def test_a_renewal_racing_a_takeover_leaves_exactly_one_owner(dynamodb):
    a, a_clock = container(dynamodb, "a", start=0.0)
    b, b_clock = container(dynamodb, "b", start=0.0)
    lease = a.take(WS)
    assert isinstance(lease, Lease)
    b.take(WS)
    b_clock.now += LEASE  # b has watched long enough, and reads the item again …
    real_update = dynamodb.update_item

    def renewal_lands_first(**kwargs):
        if kwargs["ExpressionAttributeValues"][":me"]["S"] == "b":
            a.renew(lease)  # … while a's renewal lands between b's read and b's write
        return real_update(**kwargs)

    dynamodb.update_item = renewal_lands_first
    try:
        result = b.take(WS)
    finally:
        dynamodb.update_item = real_update
    assert isinstance(result, Holder) and result.owner == "a"  # b's conditional write failed
    assert lease.held(a_clock()) and a.holder(WS).fence == lease.fence


def test_a_paused_owner_that_wakes_after_a_takeover_never_holds_the_lease_again(dynamodb):
    a, a_clock = container(dynamodb, "a", start=0.0)
    b, b_clock = container(dynamodb, "b", start=0.0)
    lease = a.take(WS)
    assert isinstance(lease, Lease)
    b.take(WS)
    a_clock.now += LEASE + 30  # SIGSTOP: a sleeps through its lease and beyond
    b_clock.now += LEASE + 30
    assert isinstance(b.take(WS), Lease)
    assert not lease.held(a_clock())  # on waking, before any write or push: not ours
    assert a.renew(lease) is False and not lease.held(a_clock())


def test_an_owner_stops_trusting_its_lease_before_anyone_may_take_it(dynamodb):
    a, a_clock = container(dynamodb, "a", start=0.0)
    lease = a.take(WS)
    assert isinstance(lease, Lease)
    assert lease.valid_until == pytest.approx(LEASE - SAFETY_SECONDS)  # from when the write was sent
    a_clock.now += LEASE - SAFETY_SECONDS
    assert not lease.held(a_clock())


def test_a_released_lease_is_taken_at_once_with_a_new_fence(dynamodb):
    a, _ = container(dynamodb, "a", start=0.0)
    b, _ = container(dynamodb, "b", start=0.0)
    lease = a.take(WS)
    assert isinstance(lease, Lease)
    a.release(lease)
    assert a.holders() == []  # nothing pending: not listed, and it expires (issue 18, defect 9)
    released = dynamodb.get_item(TableName="leases", Key={"workspace": {"S": WS}})["Item"]
    assert "owner" not in released and "inbox" not in released
    assert abs(int(released["expiresAt"]["N"]) - (time.time() + RELEASED_ITEM_SECONDS)) < 60
    taken = b.take(WS)
    assert isinstance(taken, Lease) and taken.fence > lease.fence
    assert [(h.workspace, h.owner, h.fence) for h in a.holders()] == [(WS, "b", taken.fence)]
    assert "expiresAt" not in dynamodb.get_item(TableName="leases", Key={"workspace": {"S": WS}})["Item"]


def test_the_newest_command_is_recorded_by_the_owner_only_and_never_lowered(dynamodb):
    a, _ = container(dynamodb, "a", start=0.0)
    b, _ = container(dynamodb, "b", start=0.0)
    lease = a.take(WS)
    assert isinstance(lease, Lease)
    assert a.record_newest(WS, lease.fence, (2000, "c2"))
    assert not a.record_newest(WS, lease.fence, (1000, "c1"))  # older: not written
    assert not b.record_newest(WS, lease.fence, (3000, "c3"))  # not b's lease
    assert not a.record_newest(WS, lease.fence + 1, (3000, "c3"))  # not that fence
    a.release(lease)
    assert not a.record_newest(WS, lease.fence, (3000, "c3"))  # released
    taken = b.take(WS)
    assert isinstance(taken, Lease) and taken.previous.newest == (2000, "c2")
    assert b.record_newest(WS, taken.fence, (3000, "c3")) and b.holder(WS).newest == (3000, "c3")


def test_a_released_lease_that_records_unpushed_branches_keeps_them_for_the_next_owner(dynamodb):
    a, _ = container(dynamodb, "a", start=0.0)
    b, _ = container(dynamodb, "b", start=0.0)
    lease = a.take(WS)
    assert isinstance(lease, Lease)
    write_pending(dynamodb, "leases", WS, "a", lease.fence, ["thread-t1"])
    a.release(lease)
    (kept,) = a.holders()
    assert (kept.owner, kept.inbox, kept.pending) == (None, None, ("thread-t1",))
    assert "expiresAt" not in dynamodb.get_item(TableName="leases", Key={"workspace": {"S": WS}})["Item"]
    taken = b.take(WS)
    assert isinstance(taken, Lease) and taken.fence == lease.fence + 1 and taken.previous.pending == ("thread-t1",)


def test_making_the_table_again_changes_nothing_but_turns_on_the_expiry_of_released_items(dynamodb):
    a, _ = container(dynamodb, "a", start=0.0)
    ttl = dynamodb.describe_time_to_live(TableName="leases")["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expiresAt")
    dynamodb.update_time_to_live(
        TableName="leases", TimeToLiveSpecification={"Enabled": False, "AttributeName": "expiresAt"}
    )
    a.take(WS)
    assert create_table(dynamodb, "leases") is False and a.holder(WS).owner == "a"
    assert dynamodb.describe_time_to_live(TableName="leases")["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"
    assert create_table(dynamodb, "leases") is False  # enabled already: not enabled twice


def test_a_lease_period_too_short_for_the_safety_margin_is_refused(dynamodb):
    with pytest.raises(ValueError, match="LEASE_SECONDS"):
        LeaseTable(dynamodb, "leases", "a", "inbox", lease_seconds=2 * SAFETY_SECONDS)


def test_bin_lease_table_creates_idempotently_and_lists_on_the_endpoint_it_is_given(aws_env, tmp_path):
    import os
    import subprocess
    import uuid

    from helpers import ROOT

    table = f"leases-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **aws_env}
    run = [str(ROOT / "bin" / "lease-table")]
    first = subprocess.run([*run, "create", "--table", table], env=env, capture_output=True, text=True, timeout=60)
    again = subprocess.run([*run, "create"], env={**env, "LEASE_TABLE": table}, capture_output=True, text=True)
    assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
    assert first.stdout.strip() == f"{table}: created" and again.stdout.strip() == f"{table}: exists already"
    client = boto3.client("dynamodb", region_name=aws_env["AWS_REGION"], endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    lease = LeaseTable(client, table, "a", "https://sqs/inbox-a", LEASE).take(WS)
    assert isinstance(lease, Lease)
    Roster(client, table, "a", LEASE).join("")
    listed = subprocess.run([*run, "list", "--table", table], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and f"{WS}  owner=a  fence={lease.fence}" in listed.stdout, listed.stderr
    assert "container a  beat=0  inbox=-" in listed.stdout
    missing = subprocess.run([*run, "list", "--table", "nope"], env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "bin/lease-table create" in missing.stderr and "Traceback" not in missing.stderr
