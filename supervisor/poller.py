"""The poller thread: long-polls the input queue continuously (also while workers run) and posts each
message to the loop, already held (hidden from other consumers: supervisor/visibility.py). With
LEASE_TABLE set, more pollers read inboxes (supervisor/sharing/claims.py)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from supervisor.delivery import Delivery
from supervisor.events import LoopEvent, MessageReceived
from supervisor.queues import Queues
from supervisor.visibility import VisibilityKeeper

log = logging.getLogger("supervisor.poller")
BACKOFF_SECONDS = 1.0  # after a failed receive, doubled on each failure in a row, up to MAX_BACKOFF_SECONDS
MAX_BACKOFF_SECONDS = 16.0
# Messages held (received, not yet answered) beyond which the poller takes no more: a flood waits in
# SQS instead of as thousands of messages kept hidden by this process.
MAX_HELD = 100
RECEIVE_BATCH = 10  # SQS's most for one receive
DECISION_WAIT_SECONDS = 0.5  # a check of `stop` while waiting for the loop's decision on a batch


class Poller(threading.Thread):
    def __init__(
        self,
        queues: Queues,
        visibility: VisibilityKeeper,
        delivery: Delivery,
        post: Callable[[LoopEvent], None],
        stop: threading.Event,
        *,
        queue_url: str | None = None,
        pause_for: Callable[[], float] = lambda: 0.0,
        batch_for: Callable[[], int] = lambda: RECEIVE_BATCH,
        await_decisions: bool = False,
        slot_freed: threading.Event | None = None,
    ):
        super().__init__(name="poller" if queue_url is None else "inbox-poller", daemon=True)
        self.queues, self.visibility, self.delivery, self.post, self.stop = queues, visibility, delivery, post, stop
        self.queue_url = queue_url  # None: the input queue
        self.pause_for = pause_for  # seconds between receives, one message each (0: receive at once)
        self.batch_for = batch_for  # messages a receive may take
        # Receive again only once the loop has decided on the last batch (its free slots are then known).
        self.await_decisions = await_decisions
        self.slot_freed = slot_freed or threading.Event()  # ends a pause at once
        self.failures = 0  # receives failed in a row
        self.empty_rounds = 0  # receives in a row that found nothing

    def run(self) -> None:
        while not self.stop.is_set():
            pause = self.pause_for()
            if pause:  # a full container sharing the queue: a command for our workspaces still gets in
                self.slot_freed.wait(pause)  # a slot freed ends it at once
                self.slot_freed.clear()
            if self.pause_for():
                taken = self.poll_once(max_messages=1, wait_seconds=1)
            else:
                taken = self.poll_once(max_messages=self.batch_for())
            if taken is None:
                self.stop.wait(self.backoff())

    def backoff(self) -> float:
        """Seconds to wait before the next receive: a backlog waits BACKOFF_SECONDS, failures longer."""
        return min(MAX_BACKOFF_SECONDS, BACKOFF_SECONDS * 2 ** max(0, self.failures - 1))

    def poll_once(self, max_messages: int = RECEIVE_BATCH, wait_seconds: int | None = None) -> int | None:
        """One receive; the number of messages taken, or None when it backed off (an error, or a
        backlog: the loop holds MAX_HELD messages already, and SQS keeps the rest for us or others)."""
        if len(self.visibility.held()) >= MAX_HELD:
            return None
        try:
            messages = self.queues.receive(max_messages, wait_seconds, queue_url=self.queue_url)
        except Exception as error:  # SQS unreachable or failing (boto3 retried already): back off
            self.failures += 1
            log.warning("receive failed: %s", error, extra={"failuresInARow": self.failures, "retryIn": self.backoff()})
            return None
        self.failures = 0
        self.empty_rounds = 0 if messages else self.empty_rounds + 1
        events = []
        for message in messages:
            if self.stop.is_set():  # the loop may be gone already: its last receive is handed back here
                self.delivery.give_back(message)
                continue
            self.visibility.hold(message)
            events.append(MessageReceived(message))
            self.post(events[-1])
        if self.await_decisions and events:
            while not (events[-1].decided.wait(DECISION_WAIT_SECONDS) or self.stop.is_set()):
                pass
        return len(messages)


def hand_back_unread(events: queue.Queue[LoopEvent], delivery: Delivery) -> None:
    """After the loop: messages received but never handled go back to the queue at once."""
    while True:
        try:
            event = events.get_nowait()
        except queue.Empty:
            return
        if isinstance(event, MessageReceived):
            delivery.give_back(event.message)
