"""The poller thread: long-polls the input queue continuously (also while workers run) and posts each
message to the loop, its lease already held."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from supervisor.delivery import Delivery
from supervisor.events import LoopEvent, MessageReceived
from supervisor.leases import Leases
from supervisor.queues import Queues

log = logging.getLogger("supervisor.poller")
BACKOFF_SECONDS = 1.0
# Messages held (received, not yet answered) beyond which the poller takes no more: a flood waits in
# SQS instead of as thousands of leases renewed by this process.
MAX_HELD = 100


class Poller(threading.Thread):
    def __init__(
        self,
        queues: Queues,
        leases: Leases,
        delivery: Delivery,
        post: Callable[[LoopEvent], None],
        stop: threading.Event,
    ):
        super().__init__(name="poller", daemon=True)
        self.queues, self.leases, self.delivery, self.post, self.stop = queues, leases, delivery, post, stop

    def run(self) -> None:
        while not self.stop.is_set():
            if self.poll_once() is None:
                self.stop.wait(BACKOFF_SECONDS)

    def poll_once(self) -> int | None:
        """One receive; the number of messages taken, or None when it backed off (an error, or a
        backlog: the loop holds MAX_HELD messages already, and SQS keeps the rest for us or others)."""
        if len(self.leases.held()) >= MAX_HELD:
            return None
        try:
            messages = self.queues.receive(max_messages=10)
        except Exception:
            log.exception("receive failed; retrying")
            return None
        for message in messages:
            if self.stop.is_set():  # the loop may be gone already: its last receive is handed back here
                self.delivery.give_back(message)
                continue
            self.leases.hold(message)
            self.post(MessageReceived(message))
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
