"""Which workspaces this container works in, and where a command for any other goes.

With LEASE_TABLE set, the loop asks `claim(workspace)` for each valid command: `Local` means we hold the
workspace's lease (held already, or just taken) and run it here; `Elsewhere` names the live owner's inbox,
where the command is forwarded. Leases are renewed every quarter of LEASE_SECONDS while we work in a
workspace, and given up once it has been idle that long, so the next command for it may land anywhere.
A lease that could not be renewed in time is lost: `on_lost` is told those workspaces, and nothing of
ours may write to them any more. A lease that ran out on our clock while still ours in the table (a
slow round) is renewed in place, never taken again with a new fence that would fence out our own worker.
"""

from __future__ import annotations

import logging
import threading
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
    """The leases this container holds. Called from the admission thread (`claim`, `elsewhere`) and the
    keeper's (`renew`, `release_idle`); the lock guards the bookkeeping only, never a DynamoDB call, so
    neither waits on the other's network."""

    def __init__(self, table: LeaseTable, clock: Callable[[], float], on_lost: Callable[[list[str]], None]):
        self.table = table
        self.clock = clock
        self.on_lost = on_lost  # told of leases lost (the loop's LeasesLost)
        self.leases: dict[str, Lease] = {}
        self._idle_since: dict[str, float] = {}
        self._lock = threading.Lock()

    def claim(self, workspace: str) -> Local | Elsewhere:
        with self._lock:
            lease = self.leases.get(workspace)
            if lease is not None:
                self._idle_since.pop(workspace, None)
        if lease is not None and (lease.held(self.clock()) or self._renewed(workspace, lease)):
            return Local(lease.fence)
        taken = self.table.take(workspace)
        if isinstance(taken, Holder):
            return Elsewhere(taken.owner or "", taken.inbox)
        with self._lock:
            self.leases[workspace] = taken
            self._idle_since.pop(workspace, None)
        previous = taken.previous.owner if taken.previous else None
        log.info("workspace lease taken", extra={"workspace": workspace, "fence": taken.fence, "from": previous})
        return Local(taken.fence, taken.previous)

    def _renewed(self, workspace: str, lease: Lease) -> bool:
        """A lease of ours that ran out on our clock (a keeper slowed down, DynamoDB slow): renewed in place
        when the table still says it is ours with that fence, so our own worker is not fenced out; else
        lost, and reported (raises when the table cannot be reached: the caller tries again later)."""
        if self.table.renew(lease, raise_errors=True):
            log.warning(
                "workspace lease ran out on our clock but was still ours: renewed", extra={"workspace": workspace}
            )
            return True
        self._lose([workspace])
        return False

    def elsewhere(self, workspace: str) -> Elsewhere | None:
        """For a command we cannot run now: its live owner elsewhere, or None when nobody holds it (a
        lease of ours, idle here, is given up first so that an idle container may take it)."""
        with self._lock:
            lease = self.leases.pop(workspace, None)
            self._idle_since.pop(workspace, None)
        if lease is not None:
            self.table.release(lease)
        holder = self.table.holder(workspace)
        if holder is None or holder.owner in (None, self.table.owner) or self.table.expired(holder):
            return None
        return Elsewhere(holder.owner or "", holder.inbox)

    def holds(self, workspace: str) -> bool:
        with self._lock:
            lease = self.leases.get(workspace)
        return lease is not None and lease.held(self.clock())

    def renew(self) -> list[str]:
        """Renew every lease we hold; the workspaces whose lease is lost (taken over, or run out) are
        reported and returned."""
        with self._lock:
            held = list(self.leases.items())
        lost = [w for w, lease in held if not self.table.renew(lease) and not lease.held(self.clock())]
        self._lose(lost)
        return lost

    def _lose(self, workspaces: list[str]) -> None:
        if not workspaces:
            return
        with self._lock:
            for workspace in workspaces:
                lease = self.leases.pop(workspace, None)
                self._idle_since.pop(workspace, None)
                log.error("workspace lease lost", extra={"workspace": workspace, "fence": lease and lease.fence})
        self.on_lost(workspaces)

    def release_idle(self, busy: Iterable[str]) -> list[str]:
        """Give up the leases of workspaces with no work here for a whole lease period."""
        now, busy = self.clock(), set(busy)
        idle: list[Lease] = []
        with self._lock:
            for workspace in list(self.leases):
                if workspace in busy:
                    self._idle_since.pop(workspace, None)
                    continue
                since = self._idle_since.setdefault(workspace, now)
                if now - since >= self.table.lease_seconds:
                    idle.append(self.leases.pop(workspace))
                    del self._idle_since[workspace]
        for lease in idle:
            self.table.release(lease)
        return [lease.workspace for lease in idle]

    def release_all(self) -> None:
        """A clean exit: the next container need not wait for our leases to run out."""
        with self._lock:
            leases = list(self.leases.values())
            self.leases.clear()
            self._idle_since.clear()
        for lease in leases:
            self.table.release(lease)

    def forget_all(self) -> list[str]:
        """Taken for dead by the others (supervisor/sharing/roster.py): every lease counts as lost."""
        with self._lock:
            workspaces = list(self.leases)
        self._lose(workspaces)
        return workspaces
