"""A container's inbox: an SQS queue of its own, where other containers forward the commands for the
workspaces it owns (supervisor/sharing/ownership.py), so an interrupt reaches the running worker wherever the
message landed. Created at start, named after the input queue and the container, removed on a clean exit;
a dead container's inbox is drained by whoever takes over its workspaces, then removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from supervisor.queues import Queues, Received

log = logging.getLogger("supervisor.sharing.inboxes")
MAX_BASE = 40  # of the input queue's name in an inbox's (SQS allows 80 in all)
RETENTION_SECONDS = 4 * 24 * 3600
EMPTY_ROUNDS_BEFORE_REMOVAL = 2  # an adopted inbox found empty this many receives in a row may go


def inbox_name(input_queue_url: str, owner: str) -> str:
    """`{input queue, first 40 characters}-inbox-{12 hex of the owner}`: at most 59 characters, and a
    name IAM can grant by pattern (`{input queue}-inbox-*`); the owner itself is in the queue's tags."""
    base = input_queue_url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".fifo")
    return f"{base[:MAX_BASE]}-inbox-{hashlib.sha256(owner.encode()).hexdigest()[:12]}"


def create_inbox(sqs: Any, input_queue_url: str, owner: str, visibility_seconds: int) -> str:
    url: str = sqs.create_queue(
        QueueName=inbox_name(input_queue_url, owner),
        Attributes={"VisibilityTimeout": str(visibility_seconds), "MessageRetentionPeriod": str(RETENTION_SECONDS)},
        tags={"webordinary:owner": owner, "webordinary:input": input_queue_url},
    )["QueueUrl"]
    log.info("inbox created", extra={"inbox": url})
    return url


def forward(sqs: Any, inbox_url: str, message: Received, owner: str) -> bool:
    """Send the message's body to the owner's inbox; False when that failed (keep the original)."""
    try:
        sqs.send_message(
            QueueUrl=inbox_url,
            MessageBody=message.body,
            MessageAttributes={
                "forwardedBy": {"DataType": "String", "StringValue": owner},
                "sourceMessageId": {"DataType": "String", "StringValue": message.message_id},
            },
        )
    except Exception as error:
        log.warning("could not forward to the owner's inbox: %s", error, extra={"inbox": inbox_url})
        return False
    return True


def remove_inbox(sqs: Any, inbox_url: str) -> bool:
    """Delete an inbox; False when it still holds messages or could not be deleted."""
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=inbox_url, AttributeNames=["All"])["Attributes"]
        waiting = int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )
        if waiting:
            return False
        sqs.delete_queue(QueueUrl=inbox_url)
    except sqs.exceptions.QueueDoesNotExist:
        return True
    except Exception as error:
        log.warning("could not remove an inbox: %s", error, extra={"inbox": inbox_url})
        return False
    log.info("inbox removed", extra={"inbox": inbox_url})
    return True


class Inboxes:
    """This container's inbox and the inboxes of dead owners it adopted, each read by a poller of its own."""

    def __init__(self, sqs: Any, queues: Queues, make_poller: Callable[[str, threading.Event], Any]):
        self.sqs, self.queues, self.make_poller = sqs, queues, make_poller
        self.own = ""
        self.pollers: dict[str, tuple[Any, threading.Event]] = {}  # inbox → (its poller, its stop)
        self._lock = threading.Lock()  # the loop (a takeover) and the keeper both adopt

    def __contains__(self, url: str) -> bool:
        return url in self.pollers

    def open(self, input_queue_url: str, owner: str, visibility_seconds: int) -> str:
        self.own = create_inbox(self.sqs, input_queue_url, owner, visibility_seconds)
        self._poll(self.own)
        return self.own

    def adopt(self, url: str, owner: str | None) -> None:
        with self._lock:
            if url in self.pollers or url == self.own:
                return
            log.warning("adopting the inbox of a container whose lease ran out", extra={"inbox": url, "from": owner})
            self._poll(url)

    def remove_forgotten(self, named: set[str | None]) -> None:
        """Remove the adopted inboxes that no lease names any more and that were found empty lately."""
        with self._lock:
            for url, (poller, stop) in list(self.pollers.items()):
                if url == self.own or url in named or poller.empty_rounds < EMPTY_ROUNDS_BEFORE_REMOVAL:
                    continue
                if remove_inbox(self.sqs, url):  # only when empty: else its poller goes on reading it
                    stop.set()
                    del self.pollers[url]

    def urls(self) -> set[str]:
        """Our inbox and those adopted."""
        return {url for url in (self.own, *self.pollers) if url}

    def stop_receiving(self) -> None:
        for _, stop in self.pollers.values():
            stop.set()

    def close(self, input_queue_url: str, timeout: float) -> None:
        """A clean exit: what is left in our inboxes goes back to the input queue; then they go."""
        self.stop_receiving()
        deadline = time.monotonic() + timeout
        for poller, _ in self.pollers.values():
            poller.join(timeout=max(0.0, deadline - time.monotonic()))
        for url in self.pollers:
            self._empty_into(input_queue_url, url)
            remove_inbox(self.sqs, url)
        self.pollers.clear()

    def _poll(self, url: str) -> None:
        stop = threading.Event()
        poller = self.make_poller(url, stop)
        self.pollers[url] = (poller, stop)
        poller.start()

    def _empty_into(self, input_queue_url: str, url: str) -> None:
        with contextlib.suppress(Exception):
            while messages := self.queues.receive(max_messages=10, wait_seconds=0, queue_url=url):
                for message in messages:
                    self.sqs.send_message(QueueUrl=input_queue_url, MessageBody=message.body)
                    self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message.receipt_handle)
                log.info("inbox emptied into the input queue", extra={"inbox": url, "messages": len(messages)})
