"""The lease item of a workspace in LEASE_TABLE, as the supervisor (supervisor/sharing/lease_table.py)
and a worker's fence (steps/fence.py) both read it: the one place its schema is written down.

`workspace` (the key: `client/user/repo`), `owner` (a container's id, absent when released), `inbox`
(its inbox queue), `fence` (changed on every change of owner: the fencing token a worker shows before
it writes), `beat` (raised by one on every renewal), `renewedAt` (wall clock, for people only),
`storage` (the id of the owner's WORKSPACE_PATH: the same on a shared volume), `pending` (branches
the last worker there could not push, written by that worker), `newestSentMs` and `newestCommand` (the
newest command admitted there, by first send time: a later owner supersedes any command sent before it)
and `expiresAt` (on a released item only: DynamoDB's TTL removes it then).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from supervisor.contract.config import Config

# Every call on the table (the keeper's, the admission thread's, a worker's fence): short timeouts and a
# few attempts, so that a slow DynamoDB delays a lease decision by seconds, never by minutes.
LEASE_CALLS = BotoConfig(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


def lease_table_client(config: Config) -> Any:
    """The lease table's DynamoDB client (about 0.1 s to make: a spare worker makes it before it has a job)."""
    return boto3.client(
        "dynamodb", region_name=config.aws_region, endpoint_url=config.aws_endpoint_url, config=LEASE_CALLS
    )


def read_holder(client: Any, table: str, workspace: str) -> Holder | None:
    """What the table says of a workspace now (a consistent read); None: no item."""
    reply = client.get_item(TableName=table, Key=item_key(workspace), ConsistentRead=True)
    return holder_from_item(reply["Item"]) if "Item" in reply else None


def write_pending(client: Any, table: str, workspace: str, owner: str, fence: int, branches: list[str]) -> None:
    """Record the branches a worker could not push in the lease item, only while `owner` holds it with
    that fence (raises ConditionalCheckFailedException otherwise)."""
    values: dict[str, Any] = {":me": {"S": owner}, ":fence": number(fence)}
    if branches:
        values[":p"] = {"SS": sorted(set(branches))}
    client.update_item(
        TableName=table,
        Key=item_key(workspace),
        UpdateExpression="SET #p = :p" if branches else "REMOVE #p",
        ConditionExpression="#o = :me AND #f = :fence",
        ExpressionAttributeNames={"#p": "pending", "#o": "owner", "#f": "fence"},
        ExpressionAttributeValues=values,
    )


def record_newest(client: Any, table: str, workspace: str, owner: str, fence: int, newest: tuple[int, str]) -> bool:
    """Record the newest command admitted in the workspace, (first sent ms, command id), only while `owner`
    holds it with that fence and only if no newer one is recorded; False when it was not written."""
    sent, command_id = newest
    try:
        client.update_item(
            TableName=table,
            Key=item_key(workspace),
            UpdateExpression="SET #n = :sent, #c = :command",
            ConditionExpression="#o = :me AND #f = :fence AND (attribute_not_exists(#n) OR #n < :sent)",
            ExpressionAttributeNames={"#n": "newestSentMs", "#c": "newestCommand", "#o": "owner", "#f": "fence"},
            ExpressionAttributeValues={
                ":sent": number(sent),
                ":command": {"S": command_id},
                ":me": {"S": owner},
                ":fence": number(fence),
            },
        )
    except client.exceptions.ConditionalCheckFailedException:
        return False
    return True


@dataclass(frozen=True)
class Holder:
    """What the table says of a workspace."""

    workspace: str
    owner: str | None
    inbox: str | None
    fence: int
    beat: int
    renewed_at: float | None
    storage: str | None = None
    pending: tuple[str, ...] = ()
    newest: tuple[int, str] | None = None  # (first sent ms, command id) of the newest command admitted there

    @property
    def version(self) -> tuple[int, int]:
        return (self.fence, self.beat)


def item_key(workspace: str) -> dict[str, Any]:
    return {"workspace": {"S": workspace}}


def number(value: float) -> dict[str, str]:
    return {"N": str(value)}


def holder_from_item(item: dict[str, Any]) -> Holder:
    def text(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    return Holder(
        workspace=item["workspace"]["S"],
        owner=text("owner"),
        inbox=text("inbox"),
        fence=int(item.get("fence", {"N": "0"})["N"]),
        beat=int(item.get("beat", {"N": "0"})["N"]),
        renewed_at=float(item["renewedAt"]["N"]) if "renewedAt" in item else None,
        storage=text("storage"),
        pending=tuple(item.get("pending", {}).get("SS", ())),
        newest=(int(item["newestSentMs"]["N"]), text("newestCommand") or "") if "newestSentMs" in item else None,
    )
