"""The worker's fence (steps/fence.py) on moto's DynamoDB in this process: what it reads and writes.
tests/e2e/test_fence.py runs a real worker that lost its lease."""

from __future__ import annotations

import pytest

from steps.fence import Fence, LeaseLost

WORKSPACE = "acme/u1/site"


class CountingClient:
    """The real client, counting the writes it is asked for."""

    def __init__(self, client):
        self.client, self.writes = client, 0

    def get_item(self, **kwargs):
        return self.client.get_item(**kwargs)

    def update_item(self, **kwargs):
        self.writes += 1
        return self.client.update_item(**kwargs)


def held_by(dynamodb, owner: str, fence: int) -> None:
    item = {"workspace": {"S": WORKSPACE}, "owner": {"S": owner}, "fence": {"N": str(fence)}, "beat": {"N": "0"}}
    dynamodb.put_item(TableName="leases", Item=item)


def pending_in_table(dynamodb) -> set[str]:
    item = dynamodb.get_item(TableName="leases", Key={"workspace": {"S": WORKSPACE}}, ConsistentRead=True)["Item"]
    return set(item.get("pending", {}).get("SS", ()))


def test_pending_pushes_are_written_only_when_they_change_and_never_by_a_worker_that_lost_the_lease(dynamodb):
    held_by(dynamodb, "a", 3)
    client = CountingClient(dynamodb)
    fence = Fence(client, "leases", WORKSPACE, "a", 3)
    fence.check("committing")
    fence.record_pending([])
    assert client.writes == 0  # nothing pending, none recorded: no write (the common case)
    fence.record_pending(["thread-t1"])
    assert client.writes == 1 and pending_in_table(dynamodb) == {"thread-t1"}
    fence.record_pending(["thread-t1"])
    assert client.writes == 1  # unchanged
    fence.check("pushing")  # as read back
    fence.record_pending(["thread-t1"])
    assert client.writes == 1
    fence.record_pending([])
    assert client.writes == 2 and pending_in_table(dynamodb) == set()  # pushed since: removed
    held_by(dynamodb, "b", 4)  # taken over
    with pytest.raises(LeaseLost, match="moved to b"):
        fence.check("deploying")
    fence.record_pending(["thread-t2"])
    assert pending_in_table(dynamodb) == set()  # the condition refused a write from the old owner
