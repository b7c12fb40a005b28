"""Which container works in a workspace: leases in a DynamoDB table (LEASE_TABLE), after the Kinesis
Client Library's lease table.

One item per workspace: `owner` (a container's id, absent when released), `inbox` (its inbox queue),
`fence` (raised by one on every change of owner: the fencing token a worker shows before it writes),
`beat` (raised by one on every renewal), `renewedAt` (wall clock, for people only), `storage` (the
id of the owner's WORKSPACE_PATH: the same on a shared volume) and `pending` (branches the last
worker there could not push, written by that worker). Every write is
conditional on what the writer last read, so two containers can never both take one workspace.

No decision compares clocks of two machines. The owner counts its lease valid until
`sent + LEASE_SECONDS - SAFETY_SECONDS` on its own monotonic clock, where `sent` is when it sent its last
renewal that succeeded. Another container takes a lease over only after it has seen the same
(fence, beat) for LEASE_SECONDS on *its* monotonic clock. A renewal the taker saw landed no earlier than
it was sent, so the owner stops trusting its lease before the taker can take it, whatever the offset
between their clocks (only their rates may differ, by far less than SAFETY_SECONDS).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from supervisor.contract.config import Config

log = logging.getLogger("supervisor.sharing.lease_table")
SAFETY_SECONDS = 2.0
# Every call on the table (the keeper's, the admission thread's, a worker's fence): short timeouts and a
# few attempts, so that a slow DynamoDB delays a lease decision by seconds, never by minutes.
LEASE_CALLS = BotoConfig(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


def lease_table_client(config: Config) -> Any:
    """The DynamoDB client (about 0.1 s to make: a spare worker makes it before it has a job)."""
    return boto3.client(
        "dynamodb", region_name=config.aws_region, endpoint_url=config.aws_endpoint_url, config=LEASE_CALLS
    )


def read_holder(client: Any, table: str, workspace: str) -> Holder | None:
    """What the table says of a workspace now (a consistent read); None: no item."""
    reply = client.get_item(TableName=table, Key=_key(workspace), ConsistentRead=True)
    return _holder(reply["Item"]) if "Item" in reply else None


def write_pending(client: Any, table: str, workspace: str, owner: str, fence: int, branches: list[str]) -> None:
    """Record the branches a worker could not push in the lease item, only while `owner` holds it with
    that fence (raises ConditionalCheckFailedException otherwise)."""
    values: dict[str, Any] = {":me": {"S": owner}, ":fence": _n(fence)}
    if branches:
        values[":p"] = {"SS": sorted(set(branches))}
    client.update_item(
        TableName=table,
        Key=_key(workspace),
        UpdateExpression="SET #p = :p" if branches else "REMOVE #p",
        ConditionExpression="#o = :me AND #f = :fence",
        ExpressionAttributeNames={"#p": "pending", "#o": "owner", "#f": "fence"},
        ExpressionAttributeValues=values,
    )


@dataclass
class Lease:
    """A lease this container holds."""

    workspace: str
    fence: int
    valid_until: float  # on this container's monotonic clock
    previous: Holder | None = None  # what the table said before we took it (None: a new workspace)

    def held(self, now: float) -> bool:
        return now < self.valid_until


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

    @property
    def version(self) -> tuple[int, int]:
        return (self.fence, self.beat)


class LeaseTable:
    def __init__(
        self,
        client: Any,
        table: str,
        owner: str,
        inbox: str,
        lease_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        storage: str = "",
    ):
        if lease_seconds <= 2 * SAFETY_SECONDS:
            raise ValueError(f"LEASE_SECONDS must be more than {2 * SAFETY_SECONDS:g}")
        self.client, self.table, self.owner, self.inbox, self.storage = client, table, owner, inbox, storage
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._seen: dict[str, tuple[tuple[int, int], float]] = {}  # workspace → (version, first seen)

    # Reading -------------------------------------------------------------------------------------

    def holder(self, workspace: str) -> Holder | None:
        return read_holder(self.client, self.table, workspace)

    def holders(self) -> list[Holder]:
        """Every lease in the table (for bin/status)."""
        items, start = [], None
        while True:
            page = self.client.scan(TableName=self.table, **({"ExclusiveStartKey": start} if start else {}))
            items += page.get("Items", [])
            if not (start := page.get("LastEvaluatedKey")):
                return [_holder(item) for item in items]

    # Taking, renewing, giving up -----------------------------------------------------------------

    def take(self, workspace: str, *, tries: int = 3) -> Lease | Holder:
        """Our lease on the workspace, or who holds it (alive, as far as we can tell yet)."""
        current = self.holder(workspace)
        if current is not None and current.owner is not None and current.owner != self.owner:
            if not self.expired(current):
                return current
            log.warning("taking over an expired lease", extra={"workspace": workspace, "from": current.owner})
        sent = self.clock()
        fence = (current.fence if current else 0) + 1
        names = {"#o": "owner", "#i": "inbox", "#f": "fence", "#b": "beat", "#r": "renewedAt", "#s": "storage"}
        values: dict[str, Any] = {":me": {"S": self.owner}, ":inbox": {"S": self.inbox}, ":fence": _n(fence)}
        values.update({":zero": _n(0), ":now": _n(time.time()), ":storage": {"S": self.storage or "-"}})
        if current is None:
            condition = "attribute_not_exists(#f)"
        else:  # exactly the version we read (and, for a takeover, watched long enough)
            condition = "#f = :seen_fence AND #b = :seen_beat"
            values.update({":seen_fence": _n(current.fence), ":seen_beat": _n(current.beat)})
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_key(workspace),
                UpdateExpression="SET #o = :me, #i = :inbox, #f = :fence, #b = :zero, #r = :now, #s = :storage",
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except self.client.exceptions.ConditionalCheckFailedException:  # changed since we read it
            now_held = self.holder(workspace)
            if tries > 1 and (now_held is None or now_held.owner is None):
                return self.take(workspace, tries=tries - 1)  # released meanwhile: try again
            assert now_held is not None  # a conditional write fails only on an item that exists
            return now_held
        self._seen.pop(workspace, None)
        return Lease(workspace, fence, sent + self.lease_seconds - SAFETY_SECONDS, previous=current)

    def renew(self, lease: Lease) -> bool:
        """Renew; False when it is no longer ours (taken over). A failed call (DynamoDB down) keeps
        the lease as it was: it runs out on its own if no renewal succeeds in time."""
        sent = self.clock()
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_key(lease.workspace),
                UpdateExpression="SET #b = #b + :one, #r = :now",
                ConditionExpression="#o = :me AND #f = :fence",
                ExpressionAttributeNames={"#o": "owner", "#f": "fence", "#b": "beat", "#r": "renewedAt"},
                ExpressionAttributeValues={
                    ":me": {"S": self.owner},
                    ":fence": _n(lease.fence),
                    ":one": _n(1),
                    ":now": _n(time.time()),
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            lease.valid_until = 0.0
            return False
        except Exception as error:
            log.warning("could not renew a workspace lease: %s", error, extra={"workspace": lease.workspace})
            return lease.held(self.clock())
        lease.valid_until = sent + self.lease_seconds - SAFETY_SECONDS
        return True

    def release(self, lease: Lease) -> None:
        """Give it up at once (a clean exit): the next container need not wait for it to run out."""
        lease.valid_until = 0.0
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_key(lease.workspace),
                UpdateExpression="REMOVE #o, #i",
                ConditionExpression="#o = :me AND #f = :fence",
                ExpressionAttributeNames={"#o": "owner", "#i": "inbox", "#f": "fence"},
                ExpressionAttributeValues={":me": {"S": self.owner}, ":fence": _n(lease.fence)},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            pass  # taken over already
        except Exception as error:
            log.warning("could not release a workspace lease: %s", error, extra={"workspace": lease.workspace})

    def watch_only(self, workspaces: set[str]) -> None:
        """Forget what we watched of leases no longer held by another owner (released, taken by us, gone):
        one entry per workspace ever seen would grow for as long as the container lives."""
        for workspace in set(self._seen) - workspaces:
            del self._seen[workspace]

    def expired(self, current: Holder) -> bool:
        """Whether we have watched this exact version for a whole lease period (on our clock)."""
        now = self.clock()
        seen = self._seen.get(current.workspace)
        if seen is None or seen[0] != current.version:
            self._seen[current.workspace] = (current.version, now)
            return False
        return now - seen[1] >= self.lease_seconds


def create_table(client: Any, table: str) -> bool:
    """Create the lease table (on-demand capacity); False when it exists already."""
    try:
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "workspace", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "workspace", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except client.exceptions.ResourceInUseException:
        return False
    client.get_waiter("table_exists").wait(TableName=table)
    return True


def _key(workspace: str) -> dict[str, Any]:
    return {"workspace": {"S": workspace}}


def _n(value: float) -> dict[str, str]:
    return {"N": str(value)}


def _holder(item: dict[str, Any]) -> Holder:
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
    )
