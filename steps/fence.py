"""The workspace lease a worker shows before it writes (LEASE_TABLE set: supervisor/sharing/claims.py).

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

from supervisor.contract.config import Config
from supervisor.contract.lease_item import lease_table_client, read_holder, write_pending

log = logging.getLogger("steps.fence")
lease_client = lease_table_client  # the worker's name for it


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
        given = job.get("fence")
        if not given:
            return None  # a single container: nothing to check
        client = client or lease_table_client(config)
        return cls(client, str(given["table"]), str(given["workspace"]), str(given["owner"]), int(given["fence"]))

    def check(self, before: str) -> None:
        """Raise LeaseLost unless the lease is still ours, as given."""
        try:
            holder = read_holder(self.client, self.table, self.workspace)
        except Exception as error:
            raise LeaseLost(f"could not read the workspace lease before {before}: {error}") from None
        owner, fence = (holder.owner, holder.fence) if holder else (None, 0)
        if owner != self.owner or fence != self.fence:
            raise LeaseLost(f"the workspace lease moved to {owner or 'nobody'} (fence {fence}) before {before}")
        self.recorded = frozenset(holder.pending if holder else ())

    def record_pending(self, branches: list[str]) -> None:
        """Write the branches still waiting for a push into the lease item, so that a container taking the
        workspace over from another disk can say what stayed behind. Best effort; no write when the item
        says so already (as read by the last check: nobody else writes it while we hold the lease)."""
        if self.recorded is not None and self.recorded == frozenset(branches):
            return
        try:
            write_pending(self.client, self.table, self.workspace, self.owner, self.fence, branches)
        except Exception as error:
            log.warning("could not record the pending pushes in the workspace lease: %s", error)
            return
        self.recorded = frozenset(branches)
