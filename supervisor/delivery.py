"""Every outcome of a message on SQS: answered then deleted, handed back, retried later, dead-lettered.

SQS failures are logged and reported as False, never raised into the loop: a message we fail to
delete or re-time comes back when its lease runs out, and is handled again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from supervisor.leases import Leases
from supervisor.queues import Queues, Received

log = logging.getLogger("supervisor.delivery")
RESPONSE_RETRY_SECONDS = 30  # a message whose response could not be sent comes back this much later


class Delivery:
    def __init__(self, queues: Queues, leases: Leases):
        self.queues = queues
        self.leases = leases

    def send(self, body: dict[str, Any]) -> bool:
        """Send to the output queue (boto3 retries first); False when it could not be sent."""
        try:
            self.queues.respond(body)
        except Exception as error:
            log.error("could not send to the output queue: %s", error, extra={"type": body.get("type")})
            return False
        return True

    def answer(self, message: Received, response: dict[str, Any], on_sent: Callable[[], None] = lambda: None) -> bool:
        """The final response, then the delete (CONTRACT §3: deleted only after its response is sent)."""
        if not self.send(response):
            log.error("response not sent; message kept", extra={"retryInSeconds": RESPONSE_RETRY_SECONDS})
            self.retry_later(message, RESPONSE_RETRY_SECONDS)
            return False
        on_sent()
        self.delete(message)
        return True

    def delete(self, message: Received) -> None:
        self.leases.release(message)
        try:
            self.queues.delete(message)
        except Exception as error:  # it comes back when its lease runs out
            log.error("could not delete a finished message: %s", error, extra={"messageId": message.message_id})

    def give_back(self, message: Received) -> None:
        """Visible again at once, for this or another consumer."""
        self.retry_later(message, 0)

    def retry_later(self, message: Received, seconds: int) -> None:
        self.leases.release(message)
        try:
            self.queues.extend(message, seconds)
        except Exception as error:  # it comes back when its current visibility runs out
            log.warning("could not change visibility: %s", error, extra={"messageId": message.message_id})

    def dead_letter(self, message: Received, reason: str) -> None:
        """Copy to DLQ_URL and delete; with no DLQ_URL leave it to the queue's redrive policy."""
        self.leases.release(message)
        try:
            if self.queues.dead_letter(message, reason):
                self.queues.delete(message)
        except Exception as error:
            log.error("could not dead-letter an invalid message: %s", error, extra={"messageId": message.message_id})
