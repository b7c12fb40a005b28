"""Which workspaces this container works in, and where a command for any other goes.

With LEASE_TABLE set, the loop asks `claim(workspace)` for each valid command: `Local` means we hold the
workspace's lease (held already, or just taken) and run it here; `Elsewhere` names the live owner's inbox,
where the command is forwarded. Leases are renewed every quarter of LEASE_SECONDS while we work in a
workspace, and given up once it has been idle that long, so the next command for it may land anywhere.
A lease that could not be renewed in time is lost: `renew()` names those workspaces, and nothing of
ours may write to them any more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from supervisor.sharing.lease_table import Holder, Lease, LeaseTable

log = logging.getLogger("supervisor.sharing.ownership")


@dataclass(frozen=True)
class Local:
    fence: int
    # The table's item before we took it (None: held already, or new); not part of equality.
    previous: Holder | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Elsewhere:
    owner: str
    inbox: str | None  # None: its owner recorded none (then the command waits and is tried again)


class Ownership:
    def __init__(self, table: LeaseTable, clock: Callable[[], float]):
        self.table = table
        self.clock = clock
        self.leases: dict[str, Lease] = {}
        self._idle_since: dict[str, float] = {}

    def claim(self, workspace: str) -> Local | Elsewhere:
        lease = self.leases.get(workspace)
        if lease is not None and lease.held(self.clock()):
            self._idle_since.pop(workspace, None)
            return Local(lease.fence)
        taken = self.table.take(workspace)
        if isinstance(taken, Holder):
            self.leases.pop(workspace, None)
            return Elsewhere(taken.owner or "", taken.inbox)
        self.leases[workspace] = taken
        self._idle_since.pop(workspace, None)
        log.info("workspace lease taken", extra={"workspace": workspace, "fence": taken.fence})
        return Local(taken.fence, taken.previous)

    def elsewhere(self, workspace: str) -> Elsewhere | None:
        """For a command we cannot run now: its live owner elsewhere, or None when nobody holds it (a
        lease of ours, idle here, is given up first so that an idle container may take it)."""
        lease = self.leases.pop(workspace, None)
        if lease is not None:
            self._idle_since.pop(workspace, None)
            self.table.release(lease)
        holder = self.table.holder(workspace)
        if holder is None or holder.owner in (None, self.table.owner) or self.table.expired(holder):
            return None
        return Elsewhere(holder.owner or "", holder.inbox)

    def holds(self, workspace: str) -> bool:
        lease = self.leases.get(workspace)
        return lease is not None and lease.held(self.clock())

    def renew(self) -> list[str]:
        """Renew every lease we hold; the workspaces whose lease is lost (taken over, or run out)."""
        lost = []
        for workspace, lease in list(self.leases.items()):
            if not self.table.renew(lease) and not lease.held(self.clock()):
                lost.append(workspace)
                del self.leases[workspace]
                self._idle_since.pop(workspace, None)
                log.error("workspace lease lost", extra={"workspace": workspace, "fence": lease.fence})
        return lost

    def release_idle(self, busy: Iterable[str]) -> list[str]:
        """Give up the leases of workspaces with no work here for a whole lease period."""
        now, busy = self.clock(), set(busy)
        released = []
        for workspace in list(self.leases):
            if workspace in busy:
                self._idle_since.pop(workspace, None)
                continue
            since = self._idle_since.setdefault(workspace, now)
            if now - since >= self.table.lease_seconds:
                self.table.release(self.leases.pop(workspace))
                del self._idle_since[workspace]
                released.append(workspace)
        return released

    def release_all(self) -> None:
        """A clean exit: the next container need not wait for our leases to run out."""
        for lease in self.leases.values():
            self.table.release(lease)
        self.leases.clear()
        self._idle_since.clear()
