"""Several containers on one input queue (LEASE_TABLE set): which commands run here, and where the rest go.

A container runs a command only in a workspace whose lease it holds (ownership.py on lease_table.py).
For each valid command the loop asks `admit`, and the admission thread decides, so that the loop never
waits on DynamoDB or SQS (the decision comes back to the loop as a `Decided` event):
- the workspace runs here, or a worker slot is free: claim the lease, and run it here (`Admit`);
- another live container holds it: forward the command to that owner's inbox, then delete it here;
- nobody holds it and no slot is free: put it back on the input queue for an idle container.
A command that waits (put back, an owner's inbox unreachable, DynamoDB down) goes back as a new copy
(`Delivery.requeue`): SQS counts every receive towards the redrive policy's maxReceiveCount, and
waiting is not failing. A full container receives slowly (`pause_seconds`: one message at a time,
0.5 s apart, doubling up to 2 s apart while all it gets are commands it puts back, back to 0.5 s when
one is for a workspace running here), so one with a free slot, long-polling, gets the next command
first, and waiting commands are not tossed between full containers many times a second.

The keeper thread (keeper.py) renews our leases and beats on the roster (roster.py); a container
taken for dead gets a new inbox and counts every lease as lost. A clean exit makes what it put off
visible, releases every lease, moves what is left in its inboxes back to the input queue, and leaves
the roster (marked gone when its inbox could not be emptied, so that another adopts it at once).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from supervisor.contract.config import Config
from supervisor.contract.lease_item import Holder, lease_table_client
from supervisor.delivery import Delivery
from supervisor.events import Decided, LeasesLost, LoopEvent
from supervisor.poller import RECEIVE_BATCH, Poller
from supervisor.queues import Queues, Received
from supervisor.sharing.identity import container_id, storage_id
from supervisor.sharing.inboxes import Inboxes, forward
from supervisor.sharing.keeper import Keeper
from supervisor.sharing.lease_table import LeaseTable
from supervisor.sharing.ownership import Elsewhere, Local, Ownership
from supervisor.sharing.roster import Roster
from supervisor.sharing.single import REQUEUE_SECONDS, Admit, SharingUnavailable, SingleContainer
from supervisor.visibility import VisibilityKeeper

log = logging.getLogger("supervisor.sharing.claims")
# A full container's pause between receives: the first, and the longest it doubles to while every command
# it receives is one it puts back (an interrupt for a workspace here then waits at most this long in SQS,
# when every container is full; an idle one, long-polling, takes it at once and forwards it).
FIRST_PAUSE_SECONDS, LONGEST_PAUSE_SECONDS = 0.5, 2.0
OUTAGE_DELAY_SECONDS = 10  # DynamoDB unreachable: the command is put back and tried this much later
# (workspace, message, here, free, then, command id); `then` None: an interrupt message to relay (`relay`).
Admission = tuple[str, Received, bool, bool, Callable[[Admit | None], None] | None, str]


class Claims(SingleContainer):
    AWAITS_DECISIONS = True

    def __init__(
        self,
        config: Config,
        queues: Queues,
        delivery: Delivery,
        visibility: VisibilityKeeper,
        post: Callable[[LoopEvent], None],
        *,
        dynamodb: Any | None = None,
        owner: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        assert config.lease_table is not None
        super().__init__(config, queues, delivery, visibility, post)
        self.owner = owner or container_id()
        self.storage = storage_id(config.workspace_path)
        client = dynamodb or lease_table_client(config)
        seconds = config.lease_seconds
        self.table = LeaseTable(client, config.lease_table, self.owner, "", seconds, clock, storage=self.storage)
        self.roster = Roster(client, config.lease_table, self.owner, seconds, clock)
        self.ownership = Ownership(self.table, clock, on_lost=lambda lost: post(LeasesLost(tuple(lost))))
        self.inboxes = Inboxes(queues, self._poller)
        self.keeper = Keeper(self.table, self.ownership, self.roster, self.inboxes, lambda: self.busy, self.rejoin)
        self._generation = 0  # of our inbox: a new one each time we are taken for dead
        self._admissions: queue.Queue[Admission | None] = queue.Queue()
        self._admitter = threading.Thread(target=self._admit_forever, name="admission", daemon=True)
        self._pending = 0  # admissions asked, not yet applied by the loop (the loop's thread alone counts)
        self._stopping = threading.Event()
        self._pause = FIRST_PAUSE_SECONDS  # changed by the admission thread, read by the poller's

    # Start and stop -------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self.table.holder("-")  # the table exists and we may read it
            self.open_inbox()
        except Exception as error:
            raise SharingUnavailable(f"LEASE_TABLE {self.table.table}: {type(error).__name__}: {error}") from None
        self._admitter.start()
        self.keeper.start()

    @property
    def inbox(self) -> str:
        return self.inboxes.own

    def open_inbox(self) -> None:
        name = self.owner if not self._generation else f"{self.owner}#{self._generation}"
        self.table.inbox = self.inboxes.open(
            self.config.input_queue_url or "", name, self.config.visibility_timeout_seconds
        )
        self.roster.join(self.table.inbox)
        log.info("sharing the queue", extra={"owner": self.owner, "inbox": self.inbox, "table": self.table.table})

    def rejoin(self) -> None:
        """The others took us for dead (a long pause, a partition) and removed our roster entry or our
        inbox: every lease counts as lost (the loop hands their commands back), and we join again with
        a new inbox."""
        log.error("taken for dead by the other containers: leases counted lost, joining again with a new inbox")
        self.ownership.forget_all()
        self._generation += 1
        self.open_inbox()

    def stop_receiving(self) -> None:
        self._stopping.set()
        self.inboxes.stop_receiving()

    def close(self, timeout: float) -> None:
        """After the loop and the delivery thread: what we put off made visible, leases released, inboxes
        emptied into the input queue, the roster left."""
        self._stopping.set()
        self._admissions.put(None)
        if self._admitter.is_alive():
            self._admitter.join(timeout=timeout)
        self.keeper.stop(timeout)
        # Put off in an inbox (a dead worker's retry, a response to send again): visible now, or they would
        # go with the inbox instead of back to the input queue.
        put_off = [m for m in self.delivery.put_off.values() if m.queue_url in self.inboxes.urls()]
        if put_off:
            self.queues.extend_many([(message, 0) for message in put_off])
        self.ownership.release_all()  # first: nobody forwards to us after this
        own_left = self.inboxes.close(self.config.input_queue_url or "", timeout)
        try:
            self.roster.leave(inbox_left=own_left)
        except Exception as error:  # our entry stands still: the others take us for dead a lease period later
            log.warning("could not leave the roster: %s", error)

    # What the loop asks ---------------------------------------------------------------------------

    def admit(
        self,
        workspace: str,
        message: Received,
        *,
        here: bool,
        free: bool,
        then: Callable[[Admit | None], None],
        command_id: str = "",
    ) -> None:
        """Decided on the admission thread; `then` gets the decision on the loop's thread: an `Admit`, or
        None when the message was forwarded, put back or is to be tried again (the loop is done with it).
        `here`: the workspace has work here (or a decision pending); `free`: a worker slot is open."""
        self._pending += 1
        self._admissions.put((workspace, message, here, free, then, command_id))

    def relay(self, workspace: str, message: Received) -> None:
        """An interrupt message for a workspace with no work here: to its owner's inbox if another
        container holds it, else deleted (decided on the admission thread, like a command)."""
        self._admissions.put((workspace, message, False, False, None, ""))

    def pause_seconds(self) -> float:
        return self._pause if self.full else 0.0  # a container with a free slot receives the next command first

    def batch_size(self) -> int:
        """As many as we have free slots, less the admissions pending: the rest would only be put back."""
        return max(1, min(RECEIVE_BATCH, self.free_slots - self._pending))

    # The admission thread -------------------------------------------------------------------------

    def _admit_forever(self) -> None:
        while (admission := self._admissions.get()) is not None:
            workspace, message, here, free, then, command_id = admission
            if then is None:
                self._relay_now(workspace, message)
                continue
            try:
                decision = self.decide(workspace, message, here=here, free=free, command_id=command_id)
            except Exception:  # a bug of ours: the command waits and comes back, never lost
                log.exception("admission failed", extra={"workspace": workspace})
                self.delivery.requeue(message, REQUEUE_SECONDS)
                decision = None
            self.post(Decided(self._applier(then, decision)))

    def _applier(self, then: Callable[[Admit | None], None], decision: Admit | None) -> Callable[[], None]:
        def apply() -> None:  # on the loop's thread
            self._pending -= 1
            then(decision)

        return apply

    def decide(
        self, workspace: str, message: Received, *, here: bool, free: bool, command_id: str = ""
    ) -> Admit | None:
        if self._stopping.is_set():  # stopping: no new lease; the message goes back for another container
            self.delivery.give_back(message)
            return None
        try:
            # No slot and nothing here: not ours to hold (an idle lease of ours is given up).
            claim = self.ownership.claim(workspace) if here or free else self.ownership.elsewhere(workspace)
        except Exception as error:  # DynamoDB unreachable: never a reason to dead-letter a valid command
            log.warning("could not read the workspace's lease: %s", error, extra={"workspace": workspace})
            self.delivery.requeue(message, OUTAGE_DELAY_SECONDS)
            return None
        if isinstance(claim, Local):
            if here:  # a newer command for work here (an interrupt): while full, receive sooner again
                self._pause = FIRST_PAUSE_SECONDS
            self._record_newest(workspace, claim.fence, message, command_id)
            newest = claim.previous.newest if claim.previous is not None else None
            return Admit(self._fence_for_worker(workspace, claim.fence), self._takeover(claim.previous), newest)
        # An owner's inbox we poll ourselves (ours, or a dead owner's we adopted): tried again shortly, not
        # forwarded to ourselves many times a second until its lease may be taken over.
        if isinstance(claim, Elsewhere) and claim.inbox and claim.inbox not in self.inboxes.urls():
            if forward(self.queues, claim.inbox, message, self.owner):
                log.info("forwarded to the owner", extra={"workspace": workspace, "to": claim.owner})
                self.delivery.delete(message)
            else:
                self.delivery.requeue(message, REQUEUE_SECONDS)
        elif isinstance(claim, Elsewhere):
            self.delivery.requeue(message, REQUEUE_SECONDS)
        else:  # no slot here and nobody holds it: for an idle container, and we receive more slowly
            self._pause = min(LONGEST_PAUSE_SECONDS, self._pause * 2)
            log.info("put back on the input queue", extra={"messageId": message.message_id})
            self.delivery.requeue(message, 0)
        return None

    def _relay_now(self, workspace: str, message: Received) -> None:
        try:
            holder = self.table.holder(workspace)
        except Exception as error:
            log.warning("could not read the workspace's lease: %s", error, extra={"workspace": workspace})
            self.delivery.requeue(message, OUTAGE_DELAY_SECONDS)
            return
        inbox = holder.inbox if holder is not None and holder.owner not in (None, self.owner) else None
        if not inbox or inbox in self.inboxes.urls():
            self.delivery.delete(message)  # nobody works there: the interrupt has nothing to stop
        elif forward(self.queues, inbox, message, self.owner):
            log.info("interrupt forwarded to the owner", extra={"workspace": workspace, "to": holder and holder.owner})
            self.delivery.delete(message)
        else:
            self.delivery.requeue(message, REQUEUE_SECONDS)

    # Helpers --------------------------------------------------------------------------------------

    def _record_newest(self, workspace: str, fence: int, message: Received, command_id: str) -> None:
        """Write the command's send time in the lease item (if newer than the one there), so that whoever
        holds the workspace after us supersedes a command sent before it. A failed write costs only that
        protection: the command runs all the same."""
        if not command_id or message.first_sent_ms <= 0:
            return
        try:
            self.table.record_newest(workspace, fence, (message.first_sent_ms, command_id))
        except Exception as error:
            log.warning("could not record the newest command: %s", error, extra={"workspace": workspace})

    def _fence_for_worker(self, workspace: str, fence: int) -> dict[str, Any]:
        return {"table": self.table.table, "workspace": workspace, "owner": self.owner, "fence": fence}

    def _takeover(self, previous: Holder | None) -> tuple[str, ...]:
        """Warn of what stayed on the disk of the owner we took over from (its inbox is adopted by the
        keeper once the roster says it is dead)."""
        if previous is None or previous.storage in (None, "-", self.storage):
            return ()  # the same volume: the checkout, its pending pushes and the agent's memory came along
        if previous.owner in (None, self.owner) and not previous.pending:
            return ()  # given up cleanly with everything pushed: starting from the remote loses nothing
        pending = ", ".join(previous.pending) or "none recorded"
        warning = (
            f"this workspace was last used by container {previous.owner or 'unknown'} on another disk: branches "
            f"it had not pushed ({pending}) and the agent's memory of earlier commands stay there; "
            "continuing from the remote"
        )
        log.warning("workspace moved from another disk", extra={"workspace": previous.workspace, "pending": pending})
        return (warning,)

    def _poller(self, url: str, stop: threading.Event) -> Poller:
        return Poller(self.queues, self.visibility, self.delivery, self.post, stop, queue_url=url)
