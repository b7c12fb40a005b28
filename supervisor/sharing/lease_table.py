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

A released lease's item stays, without owner or inbox: it keeps the newest command admitted there
(`newestSentMs`, so that a command sent before it and received later, by any container, is superseded
rather than run after it) and any pending branches (the next owner warns of them). DynamoDB's TTL
removes it `RELEASED_ITEM_SECONDS` later (`expiresAt`; kept while branches are pending), so the table
holds the workspaces in use and those used lately, not every workspace ever used. A new item's fence
starts at the wall clock's milliseconds, so a fence is never given twice to one owner for one workspace
even though items come and go (a worker's check compares owner *and* fence).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from supervisor.contract.lease_item import Holder, holder_from_item, item_key, number, read_holder, record_newest

log = logging.getLogger("supervisor.sharing.lease_table")
SAFETY_SECONDS = 2.0
# How long a released item is kept: twice the day the template's input queue keeps a message (a command
# still bouncing as copies after that is an outage, not a race). Not longer: every keeper round scans
# the whole table, released items included (DynamoDB's TTL removes them up to a few days late).
RELEASED_ITEM_SECONDS = 2 * 24 * 3600
EXPIRES_AT = "expiresAt"  # the table's TTL attribute (create_table; the CloudFormation template)


@dataclass
class Lease:
    """A lease this container holds."""

    workspace: str
    fence: int
    valid_until: float  # on this container's monotonic clock
    previous: Holder | None = None  # what the table said before we took it (None: a new workspace)

    def held(self, now: float) -> bool:
        return now < self.valid_until


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
        """Every lease in the table that matters now: the workspaces in use, and those whose last worker
        left branches unpushed (not other released items, nor the roster's)."""
        items, start = [], None
        while True:
            page = self.client.scan(TableName=self.table, **({"ExclusiveStartKey": start} if start else {}))
            items += page.get("Items", [])
            if not (start := page.get("LastEvaluatedKey")):
                holders = [holder_from_item(item) for item in items if "/" in item["workspace"]["S"]]
                return [h for h in holders if h.owner is not None or h.pending]

    # Taking, renewing, giving up -----------------------------------------------------------------

    def take(self, workspace: str, *, tries: int = 3) -> Lease | Holder:
        """Our lease on the workspace, or who holds it (alive, as far as we can tell yet)."""
        current = self.holder(workspace)
        if current is not None and current.owner is not None and current.owner != self.owner:
            if not self.expired(current):
                return current
            log.warning("taking over an expired lease", extra={"workspace": workspace, "from": current.owner})
        sent = self.clock()
        fence = current.fence + 1 if current else int(time.time() * 1000)
        names = {"#o": "owner", "#i": "inbox", "#f": "fence", "#b": "beat", "#r": "renewedAt", "#s": "storage"}
        names["#e"] = EXPIRES_AT
        values: dict[str, Any] = {":me": {"S": self.owner}, ":inbox": {"S": self.inbox}, ":fence": number(fence)}
        values.update({":zero": number(0), ":now": number(time.time()), ":storage": {"S": self.storage or "-"}})
        if current is None:
            condition = "attribute_not_exists(#f)"
        else:  # exactly the version we read (and, for a takeover, watched long enough)
            condition = "#f = :seen_fence AND #b = :seen_beat"
            values.update({":seen_fence": number(current.fence), ":seen_beat": number(current.beat)})
        try:
            self.client.update_item(
                TableName=self.table,
                Key=item_key(workspace),
                UpdateExpression="SET #o = :me, #i = :inbox, #f = :fence, #b = :zero, #r = :now, #s = :storage "
                "REMOVE #e",
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

    def renew(self, lease: Lease, *, raise_errors: bool = False) -> bool:
        """Renew; False when it is no longer ours (taken over). A failed call (DynamoDB down) keeps
        the lease as it was: it runs out on its own if no renewal succeeds in time (or, with
        `raise_errors`, the error is raised)."""
        sent = self.clock()
        try:
            self.client.update_item(
                TableName=self.table,
                Key=item_key(lease.workspace),
                UpdateExpression="SET #b = #b + :one, #r = :now",
                ConditionExpression="#o = :me AND #f = :fence",
                ExpressionAttributeNames={"#o": "owner", "#f": "fence", "#b": "beat", "#r": "renewedAt"},
                ExpressionAttributeValues={
                    ":me": {"S": self.owner},
                    ":fence": number(lease.fence),
                    ":one": number(1),
                    ":now": number(time.time()),
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            lease.valid_until = 0.0
            return False
        except Exception as error:
            if raise_errors:
                raise
            log.warning("could not renew a workspace lease: %s", error, extra={"workspace": lease.workspace})
            return lease.held(self.clock())
        lease.valid_until = sent + self.lease_seconds - SAFETY_SECONDS
        return True

    def release(self, lease: Lease) -> None:
        """Give it up at once (idle, or a clean exit): the next container need not wait for it to run out.
        Its owner and inbox go; the item stays until `expiresAt`, or for good while branches are pending."""
        lease.valid_until = 0.0
        mine = {":me": {"S": self.owner}, ":fence": number(lease.fence)}
        names = {"#o": "owner", "#i": "inbox", "#f": "fence"}
        expires = {":expires": number(int(time.time()) + RELEASED_ITEM_SECONDS)}
        for update, condition, values in (
            ("REMOVE #o, #i SET #e = :expires", "#o = :me AND #f = :fence AND attribute_not_exists(#p)", expires),
            ("REMOVE #o, #i", "#o = :me AND #f = :fence", {}),  # pending branches: kept until a worker pushes
        ):
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key=item_key(lease.workspace),
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames={**names, **({"#e": EXPIRES_AT, "#p": "pending"} if values else {})},
                    ExpressionAttributeValues={**mine, **values},
                )
                return
            except self.client.exceptions.ConditionalCheckFailedException:
                continue  # pending branches recorded (then the second form), or taken over already
            except Exception as error:
                log.warning("could not release a workspace lease: %s", error, extra={"workspace": lease.workspace})
                return

    def record_newest(self, workspace: str, fence: int, newest: tuple[int, str]) -> bool:
        """Record the newest command admitted in a workspace we hold (lease_item.record_newest)."""
        return record_newest(self.client, self.table, workspace, self.owner, fence, newest)

    def watch(self, others: list[Holder]) -> None:
        """Watch every lease another owner holds (the keeper, every round), and forget the rest: a dead
        owner's lease is then taken over a lease period after it stopped, at the first command for it."""
        for workspace in set(self._seen) - {h.workspace for h in others}:
            del self._seen[workspace]
        for holder in others:
            self.expired(holder)

    def expired(self, current: Holder) -> bool:
        """Whether we have watched this exact version for a whole lease period (on our clock)."""
        now = self.clock()
        seen = self._seen.get(current.workspace)
        if seen is None or seen[0] != current.version:
            self._seen[current.workspace] = (current.version, now)
            return False
        return now - seen[1] >= self.lease_seconds


def create_table(client: Any, table: str) -> bool:
    """Create the lease table (on-demand capacity); False when it exists already. Either way its released
    items expire by TTL on `expiresAt` (turned on for a table made before they did)."""
    try:
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "workspace", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "workspace", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        made = True
    except client.exceptions.ResourceInUseException:
        made = False
    client.get_waiter("table_exists").wait(TableName=table)
    expiry = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if expiry.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):  # enabling it twice is an error
        client.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": EXPIRES_AT}
        )
    return made
