"""The keeper thread of a container sharing the queue: every quarter of LEASE_SECONDS it renews our
leases (a lost one is reported to the loop), gives up those idle for a lease period, beats on the
roster, and sweeps what dead containers left: their inboxes are adopted, drained, removed, then their
roster entries; it watches the leases others hold, so that a dead owner's are taken over a lease
period after it stopped. It makes every DynamoDB and SQS call outside any lock the loop or the admission thread
waits on."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from supervisor.sharing.inboxes import Inboxes
from supervisor.sharing.lease_table import LeaseTable
from supervisor.sharing.ownership import Ownership
from supervisor.sharing.roster import Roster

log = logging.getLogger("supervisor.sharing.keeper")


class Keeper:
    def __init__(
        self,
        table: LeaseTable,
        ownership: Ownership,
        roster: Roster,
        inboxes: Inboxes,
        busy: Callable[[], Iterable[str]],
        rejoin: Callable[[], None],
    ):
        self.table, self.ownership, self.roster, self.inboxes = table, ownership, roster, inboxes
        self.busy = busy  # the workspaces with work here (the loop publishes them)
        self.rejoin = rejoin  # we were taken for dead: a new inbox, every lease lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep_forever, name="keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def round(self) -> None:
        """Renew, give up idle leases, beat, sweep dead containers, watch the others' leases (a scan of
        the table: the leases in use, since released ones are deleted)."""
        self.ownership.renew()  # lost leases are reported by `ownership`
        self.ownership.release_idle(self.busy())
        if not self.roster.beat() or self.inboxes.own_missing():
            self.rejoin()
        self.sweep()
        self.table.watch([h for h in self.table.holders() if h.owner not in (None, self.table.owner)])

    def sweep(self) -> None:
        """Adopt the inboxes of dead containers; once one is drained and removed, its roster entry goes."""
        dead = self.roster.dead(self.roster.members())
        for member in dead:
            if member.inbox:
                self.inboxes.adopt(member.inbox, member.owner)
        removed = set(self.inboxes.remove_drained())
        for member in dead:
            if not member.inbox or member.owner in removed:
                self.roster.remove(member)

    def _keep_forever(self) -> None:
        every = self.table.lease_seconds / 4  # three renewals may fail before a lease runs out
        while not self._stop.wait(every):
            try:
                self.round()
            except Exception:  # the next round tries again; a lease that runs out meanwhile is reported
                log.exception("keeper round failed")
