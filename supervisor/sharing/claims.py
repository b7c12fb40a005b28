"""Several containers on one input queue (LEASE_TABLE set): which commands run here, and where the rest go.

A container runs a command only in a workspace whose lease it holds (supervisor/sharing/ownership.py on
supervisor/sharing/lease_table.py). For each valid command the loop asks `admit`:
- the workspace runs here, or a worker slot is free: claim the lease, and run it here (`Admit`);
- another live container holds it: forward the command to that owner's inbox, then delete it here;
- nobody holds it and no slot is free: put it back on the input queue for an idle container (a copy
  sent, then the original deleted: the receive count SQS's redrive policy counts starts again, so
  waiting is never mistaken for failing). A full container receives slowly (`pause_seconds`: one
  message at a time, 0.5 s apart, doubling up to 2 s apart while all it gets are commands it puts back,
  back to 0.5 s when one is for a workspace running here), so one with a free slot, long-polling, gets
  the next command first, and waiting commands are not tossed between full containers many times a
  second.

A keeper thread renews our leases, gives up those idle for a lease period, and reports lost ones to
the loop (`LeasesLost`). It also watches every other lease: the inbox of an owner whose lease ran out
(a dead container) is adopted, polled like ours until it is empty and no lease names it, then removed.
A clean exit releases every lease and moves what is left in our inboxes back to the input queue.

The DynamoDB and forwarding calls in `admit` run on the loop's thread: a few milliseconds each, with
short timeouts and two attempts, so an outage delays the loop by seconds at most.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from supervisor.contract.config import Config
from supervisor.delivery import Delivery
from supervisor.events import LeasesLost, LoopEvent
from supervisor.poller import RECEIVE_BATCH, Poller
from supervisor.queues import Queues, Received
from supervisor.sharing.identity import container_id, storage_id
from supervisor.sharing.inboxes import Inboxes, forward
from supervisor.sharing.lease_table import Holder, LeaseTable
from supervisor.sharing.ownership import Elsewhere, Local, Ownership
from supervisor.sharing.single import Admit, SharingUnavailable, SingleContainer
from supervisor.visibility import VisibilityKeeper

log = logging.getLogger("supervisor.sharing.claims")
REQUEUE_DELAY_SECONDS = 0  # a command put back for an idle container (a full one receives slowly: `pause_seconds`)
# A full container's pause between receives: the first, and the longest it doubles to while every command
# it receives is one it puts back (an interrupt for a workspace here then waits at most this long in SQS,
# when every container is full; an idle one, long-polling, takes it at once and forwards it).
FIRST_PAUSE_SECONDS, LONGEST_PAUSE_SECONDS = 0.5, 2.0
OUTAGE_DELAY_SECONDS = 10  # DynamoDB unreachable: the command is put back and tried this much later
RETRY_SECONDS = 2  # a forward that failed, or an owner with no inbox: tried again this much later
QUICK_CALLS = BotoConfig(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 2})


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
        sqs: Any | None = None,
        owner: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        assert config.lease_table is not None
        super().__init__(config, queues, delivery, visibility, post)
        self.owner = owner or container_id()
        self.storage = storage_id(config.workspace_path)
        client = dynamodb or boto3.client(
            "dynamodb", region_name=config.aws_region, endpoint_url=config.aws_endpoint_url, config=QUICK_CALLS
        )
        self.sqs = sqs or boto3.client(
            "sqs", region_name=config.aws_region, endpoint_url=config.aws_endpoint_url, config=QUICK_CALLS
        )
        self.table = LeaseTable(
            client, config.lease_table, self.owner, "", config.lease_seconds, clock, storage=self.storage
        )
        self.ownership = Ownership(self.table, clock)
        self.inboxes = Inboxes(self.sqs, queues, self._poller)
        self._lock = threading.Lock()  # the loop's admit and the keeper's rounds take turns on the leases
        self._stop = threading.Event()
        self._keeper = threading.Thread(target=self._keep_forever, name="claims", daemon=True)
        self._pause = FIRST_PAUSE_SECONDS  # changed by the loop's thread, read by the poller's

    # Start and stop -------------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self.table.holder("-")  # the table exists and we may read it
            self.open_inbox()
        except Exception as error:
            raise SharingUnavailable(f"LEASE_TABLE {self.table.table}: {type(error).__name__}: {error}") from None
        self._keeper.start()

    @property
    def inbox(self) -> str:
        return self.inboxes.own

    def open_inbox(self) -> None:
        visibility = self.config.visibility_timeout_seconds
        self.table.inbox = self.inboxes.open(self.config.input_queue_url or "", self.owner, visibility)
        log.info("sharing the queue", extra={"owner": self.owner, "inbox": self.inbox, "table": self.table.table})

    def stop_receiving(self) -> None:
        self.inboxes.stop_receiving()

    def close(self, timeout: float) -> None:
        """After the loop and the delivery thread: leases released, inboxes emptied into the input queue."""
        self._stop.set()
        if self._keeper.is_alive():
            self._keeper.join(timeout=timeout)
        # Put off in an inbox (a dead worker's retry, a response to send again): visible now, or they would
        # go with the inbox instead of back to the input queue.
        put_off = [m for m in self.delivery.put_off.values() if m.queue_url in self.inboxes.urls()]
        if put_off:
            self.queues.extend_many([(message, 0) for message in put_off])
        with self._lock:
            self.ownership.release_all()  # first: nobody forwards to us after this
        self.inboxes.close(self.config.input_queue_url or "", timeout)

    # What the loop asks ---------------------------------------------------------------------------

    def admit(self, workspace: str, message: Received, *, here: bool, free: bool) -> Admit | None:
        """`here`: the workspace has a run here; `free`: a worker slot is open. None: the message was
        forwarded, put back, or is to be tried again; the loop is done with it."""
        try:
            with self._lock:
                # No slot and nothing here: not ours to hold (an idle lease of ours is given up).
                claim = self.ownership.claim(workspace) if here or free else self.ownership.elsewhere(workspace)
        except Exception as error:  # DynamoDB unreachable: never a reason to dead-letter a valid command
            log.warning("could not read the workspace's lease: %s", error, extra={"workspace": workspace})
            self._requeue(message, OUTAGE_DELAY_SECONDS)
            return None
        if isinstance(claim, Local):
            if here:  # a newer command for work here (an interrupt): while full, receive sooner again
                self._pause = FIRST_PAUSE_SECONDS
            return Admit(self._lease_for_worker(workspace, claim.fence), self._takeover(claim.previous))
        if isinstance(claim, Elsewhere) and claim.inbox and claim.inbox != self.inbox:
            if forward(self.sqs, claim.inbox, message, self.owner):
                log.info("forwarded to the owner", extra={"workspace": workspace, "to": claim.owner})
                self.delivery.delete(message)
            else:
                self.delivery.retry_later(message, RETRY_SECONDS)
        elif isinstance(claim, Elsewhere):
            self.delivery.retry_later(message, RETRY_SECONDS)
        else:  # no slot here and nobody holds it: for an idle container, and we receive more slowly
            self._pause = min(LONGEST_PAUSE_SECONDS, self._pause * 2)
            self._requeue(message)
        return None

    def pause_seconds(self) -> float:
        return self._pause if self.full else 0.0  # a container with a free slot receives the next command first

    def batch_size(self) -> int:
        """As many as we have free slots: the rest of a batch would only be put back for the others."""
        return max(1, min(RECEIVE_BATCH, self.free_slots))

    # The keeper -----------------------------------------------------------------------------------

    def keep(self) -> None:
        """One round: renew, give up idle leases, report lost ones, adopt dead owners' inboxes."""
        with self._lock:
            lost = self.ownership.renew()
            self.ownership.release_idle(self.busy)
        if lost:
            self.post(LeasesLost(tuple(lost)))
        try:
            holders = self.table.holders()
        except Exception as error:
            log.warning("could not read the lease table: %s", error)
            return
        others = [h for h in holders if h.owner not in (None, self.owner)]
        self.table.watch_only({h.workspace for h in others})
        for holder in others:
            if self.table.expired(holder) and holder.inbox:
                self.inboxes.adopt(holder.inbox, holder.owner)
        self.inboxes.remove_forgotten({h.inbox for h in holders if h.owner is not None})

    def _keep_forever(self) -> None:
        every = self.config.lease_seconds / 4  # three renewals may fail before the lease runs out
        while not self._stop.wait(every):
            try:
                self.keep()
            except Exception:  # the next round tries again; a lease that runs out meanwhile is reported
                log.exception("lease round failed")

    # Helpers --------------------------------------------------------------------------------------

    def _lease_for_worker(self, workspace: str, fence: int) -> dict[str, Any]:
        return {"table": self.table.table, "workspace": workspace, "owner": self.owner, "fence": fence}

    def _takeover(self, previous: Holder | None) -> tuple[str, ...]:
        """Adopt the inbox of the owner we took over from; warn of what stayed on its disk."""
        if previous is None:
            return ()
        if previous.owner not in (None, self.owner) and previous.inbox:
            self.inboxes.adopt(previous.inbox, previous.owner)
        if previous.storage in (None, "-", self.storage):
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

    def _requeue(self, message: Received, delay: int = REQUEUE_DELAY_SECONDS) -> None:
        """A new copy on the input queue, `delay` seconds late, then the original deleted."""
        try:
            self.sqs.send_message(QueueUrl=self.config.input_queue_url, MessageBody=message.body, DelaySeconds=delay)
        except Exception as error:
            log.warning("could not put a command back on the input queue: %s", error)
            self.delivery.retry_later(message, RETRY_SECONDS)
            return
        log.info("put back on the input queue", extra={"messageId": message.message_id, "delaySeconds": delay})
        self.delivery.delete(message)
