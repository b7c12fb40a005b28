"""The workspace lease a worker shows before it writes (LEASE_TABLE set: supervisor/claims.py).

The supervisor hands its worker the lease it holds: table, workspace, owner and fence. Before the
worker touches the checkout, commits, deploys or pushes, it reads the lease item (a consistent read)
and goes on only while owner and fence are still the ones it was given. A container that was paused
past its lease, or cut off from DynamoDB, so never writes over the work of the container that took
the workspace over. A lease that cannot be read counts as lost: writing unchecked is what fencing is
there to prevent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from supervisor.contract.config import Config

log = logging.getLogger("steps.fence")
QUICK_CALLS = BotoConfig(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})


def lease_client(config: Config) -> Any:
    """The DynamoDB client (about 0.1 s to make: a spare worker makes it before it has a job)."""
    return boto3.client(
        "dynamodb", region_name=config.aws_region, endpoint_url=config.aws_endpoint_url, config=QUICK_CALLS
    )


class LeaseLost(Exception):
    """Another container holds this workspace now: stop, write nothing, report nothing."""


@dataclass
class Fence:
    client: Any
    table: str
    workspace: str
    owner: str
    fence: int
    # The pending branches the item held at the last check: an unchanged list is not written again.
    recorded: frozenset[str] | None = field(default=None, compare=False)

    @classmethod
    def from_job(cls, job: dict[str, Any], config: Config, client: Any | None = None) -> Fence | None:
        lease = job.get("lease")
        if not lease:
            return None  # a single container: nothing to check
        client = client or lease_client(config)
        return cls(client, str(lease["table"]), str(lease["workspace"]), str(lease["owner"]), int(lease["fence"]))

    def check(self, before: str) -> None:
        """Raise LeaseLost unless the lease is still ours, as given."""
        try:
            item = self.client.get_item(TableName=self.table, Key=self._key(), ConsistentRead=True).get("Item", {})
        except Exception as error:
            raise LeaseLost(f"could not read the workspace lease before {before}: {error}") from None
        owner = item.get("owner", {}).get("S")
        fence = int(item.get("fence", {}).get("N", "0"))
        if owner != self.owner or fence != self.fence:
            raise LeaseLost(f"the workspace lease moved to {owner or 'nobody'} (fence {fence}) before {before}")
        self.recorded = frozenset(item.get("pending", {}).get("SS", ()))

    def record_pending(self, branches: list[str]) -> None:
        """Write the branches still waiting for a push into the lease item, so that a container taking the
        workspace over from another disk can say what stayed behind. Best effort; no write when the item
        says so already (as read by the last check: nobody else writes it while we hold the lease)."""
        if self.recorded is not None and self.recorded == frozenset(branches):
            return
        update = "SET #p = :p" if branches else "REMOVE #p"
        values: dict[str, Any] = {":me": {"S": self.owner}, ":fence": {"N": str(self.fence)}}
        if branches:
            values[":p"] = {"SS": sorted(set(branches))}
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(),
                UpdateExpression=update,
                ConditionExpression="#o = :me AND #f = :fence",
                ExpressionAttributeNames={"#p": "pending", "#o": "owner", "#f": "fence"},
                ExpressionAttributeValues=values,
            )
        except Exception as error:
            log.warning("could not record the pending pushes in the workspace lease: %s", error)
            return
        self.recorded = frozenset(branches)

    def _key(self) -> dict[str, Any]:
        return {"workspace": {"S": self.workspace}}
