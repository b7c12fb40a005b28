"""A container's inbox: an SQS queue of its own, where other containers forward the commands for the
workspaces it owns (supervisor/sharing/ownership.py), so an interrupt reaches the running worker wherever the
message landed. Created at start, named after the input queue and the container, removed on a clean exit;
a dead container's inbox (supervisor/sharing/roster.py says which are dead) is adopted, drained, then removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from supervisor.queues import Queues, Received, is_fifo

log = logging.getLogger("supervisor.sharing.inboxes")
MAX_BASE = 40  # of the input queue's name in an inbox's (SQS allows 80 in all)
RETENTION_SECONDS = 4 * 24 * 3600
EMPTY_ROUNDS_BEFORE_REMOVAL = 2  # an adopted inbox found empty this many receives in a row may go


def inbox_name(input_queue_url: str, owner: str) -> str:
    """`{input queue, first 40 characters}-inbox-{12 hex of the owner}`: at most 59 characters, and a
    name IAM can grant by pattern (`{input queue}-inbox-*`); the owner itself is in the queue's tags."""
    base = input_queue_url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".fifo")
    suffix = ".fifo" if is_fifo(input_queue_url) else ""  # a FIFO input's inboxes are FIFO queues too
    return f"{base[:MAX_BASE]}-inbox-{hashlib.sha256(owner.encode()).hexdigest()[:12]}{suffix}"


def create_inbox(queues: Queues, input_queue_url: str, owner: str, visibility_seconds: int) -> str:
    attributes = {"VisibilityTimeout": str(visibility_seconds), "MessageRetentionPeriod": str(RETENTION_SECONDS)}
    if is_fifo(input_queue_url):
        attributes.update(FifoQueue="true", ContentBasedDeduplication="false")
    url = queues.create_queue(
        inbox_name(input_queue_url, owner),
        attributes,
        {"webordinary:owner": owner, "webordinary:input": input_queue_url},
    )
    log.info("inbox created", extra={"inbox": url})
    return url


def forward(queues: Queues, inbox_url: str, message: Received, owner: str) -> bool:
    """Send the message's body to the owner's inbox; False when that failed (keep the original)."""
    try:
        attributes = {"forwardedBy": owner, "sourceMessageId": message.message_id, **message.resend_attributes()}
        queues.send_to(inbox_url, message.body, attributes=attributes)
    except Exception as error:
        log.warning("could not forward to the owner's inbox: %s", error, extra={"inbox": inbox_url})
        return False
    return True


def remove_inbox(queues: Queues, inbox_url: str) -> bool:
    """Delete an inbox; False when it still holds messages (visible or in flight) or could not be deleted."""
    try:
        waiting = queues.depth(inbox_url)
        if waiting:
            return False
        if waiting is not None:
            queues.delete_queue(inbox_url)
    except Exception as error:
        log.warning("could not remove an inbox: %s", error, extra={"inbox": inbox_url})
        return False
    log.info("inbox removed", extra={"inbox": inbox_url})
    return True


class Inboxes:
    """This container's inbox and the inboxes of dead owners it adopted, each read by a poller of its own."""

    def __init__(self, queues: Queues, make_poller: Callable[[str, threading.Event], Any]):
        self.queues, self.make_poller = queues, make_poller
        self.own = ""
        self.pollers: dict[str, tuple[Any, threading.Event]] = {}  # inbox → (its poller, its stop)
        self.adopted_from: dict[str, str | None] = {}  # adopted inbox → the dead owner it was
        self._lock = threading.Lock()  # the admission thread (a takeover) and the keeper both adopt

    def __contains__(self, url: str) -> bool:
        return url in self.pollers

    def open(self, input_queue_url: str, owner: str, visibility_seconds: int) -> str:
        """Our inbox, created and polled; a second call (taken for dead, our inbox swept) makes a new one."""
        with self._lock:
            if self.own:
                self._stop_polling(self.own)
            self.own = create_inbox(self.queues, input_queue_url, owner, visibility_seconds)
            self._poll(self.own)
            return self.own

    def adopt(self, url: str, owner: str | None) -> None:
        with self._lock:
            if url in self.pollers or url == self.own:
                return
            log.warning("adopting the inbox of a container taken for dead", extra={"inbox": url, "from": owner})
            self.adopted_from[url] = owner
            self._poll(url)

    def remove_drained(self) -> list[str | None]:
        """Remove the adopted inboxes found empty lately (visible and in flight); the owners they were."""
        removed = []
        with self._lock:
            for url, (poller, _) in list(self.pollers.items()):
                # Found empty lately, or failing (another adopter may have removed it already).
                if url == self.own or (poller.empty_rounds < EMPTY_ROUNDS_BEFORE_REMOVAL and not poller.failures):
                    continue
                if remove_inbox(self.queues, url):  # only when empty: else its poller goes on reading it
                    self._stop_polling(url)
                    removed.append(self.adopted_from.pop(url, None))
        return removed

    def own_missing(self) -> bool:
        """Whether our own inbox is gone (removed by others who took us for dead); asked of SQS only
        while its poller fails."""
        entry = self.pollers.get(self.own)
        return entry is not None and bool(entry[0].failures) and self.queues.depth(self.own) is None

    def urls(self) -> set[str]:
        """Our inbox and those adopted."""
        return {url for url in (self.own, *self.pollers) if url}

    def stop_receiving(self) -> None:
        for _, stop in self.pollers.values():
            stop.set()

    def close(self, input_queue_url: str, timeout: float) -> bool:
        """A clean exit: what is visible in our inboxes goes back to the input queue, then they go. An
        inbox still holding messages in flight stays (ours for another container to adopt; an adopted
        one for the others, its dead owner still on the roster). True when our own inbox stayed."""
        self.stop_receiving()
        deadline = time.monotonic() + timeout
        for poller, _ in self.pollers.values():
            poller.join(timeout=max(0.0, deadline - time.monotonic()))
        own_left = False
        for url in self.pollers:
            self._empty_into(input_queue_url, url)
            if not remove_inbox(self.queues, url) and url == self.own:
                own_left = True
        self.pollers.clear()
        return own_left

    def _poll(self, url: str) -> None:
        stop = threading.Event()
        poller = self.make_poller(url, stop)
        self.pollers[url] = (poller, stop)
        poller.start()

    def _stop_polling(self, url: str) -> None:
        _, stop = self.pollers.pop(url, (None, None))
        if stop is not None:
            stop.set()

    def _empty_into(self, input_queue_url: str, url: str) -> None:
        with contextlib.suppress(Exception):
            while messages := self.queues.receive(max_messages=10, wait_seconds=0, queue_url=url):
                for message in messages:
                    again = f"back {message.message_id}"
                    attributes = message.resend_attributes()
                    self.queues.send_to(input_queue_url, message.body, deduplication=again, attributes=attributes)
                    self.queues.delete_many([message])
                log.info("inbox emptied into the input queue", extra={"inbox": url, "messages": len(messages)})
