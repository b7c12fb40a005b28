"""Keep every message we hold invisible to other consumers while we hold it.

`ChangeMessageVisibility` sets a new timeout counted from now, so a held message is re-leased for
VISIBILITY_TIMEOUT_SECONDS every quarter of that: if the supervisor dies, its messages come back within
VISIBILITY_TIMEOUT_SECONDS instead of after a long fixed timeout.
"""

from __future__ import annotations

import logging
import threading

from supervisor.queues import Queues, Received

log = logging.getLogger("supervisor.leases")
LEASE_SECONDS = 120


def receipt_is_gone(error: Exception) -> bool:
    """SQS (or the in-memory queue) says this receipt handle no longer names a message we hold."""
    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    return "ReceiptHandleIsInvalid" in (code, type(error).__name__) or "receipt handle has expired" in str(error)


class Leases:
    def __init__(self, queues: Queues, lease_seconds: int = LEASE_SECONDS):
        self.queues = queues
        self.lease_seconds = lease_seconds
        self.renew_every = lease_seconds / 4  # three renewals can fail before a message comes back
        self._held: dict[str, Received] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_forever, name="leases", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def hold(self, message: Received) -> None:
        with self._lock:
            self._held[message.message_id] = message
        self._renew(message)

    def release(self, message: Received) -> None:
        with self._lock:
            self._held.pop(message.message_id, None)

    def held(self) -> list[Received]:
        with self._lock:
            return list(self._held.values())

    def _renew(self, message: Received) -> None:
        try:
            self.queues.extend(message, self.lease_seconds)
        except Exception as error:
            if receipt_is_gone(error):  # deleted, or received again with a new receipt: not ours to renew
                self.release(message)
                log.info("stopped renewing a message we no longer hold", extra={"messageId": message.message_id})
                return
            # A passing fault: the next round tries again.
            log.warning("could not extend visibility: %s", error, extra={"messageId": message.message_id})

    def _renew_forever(self) -> None:
        while not self._stop.wait(self.renew_every):
            for message in self.held():
                self._renew(message)
