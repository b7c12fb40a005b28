"""Keep every message we hold invisible to other consumers while we hold it.

`ChangeMessageVisibility` sets a new timeout counted from now, so a held message is hidden again for
VISIBILITY_TIMEOUT_SECONDS every quarter of that: if the supervisor dies, its messages come back within
VISIBILITY_TIMEOUT_SECONDS instead of after a long fixed timeout.
"""

from __future__ import annotations

import logging
import threading

from supervisor.queues import Queues, Received

log = logging.getLogger("supervisor.visibility")
DEFAULT_VISIBILITY_SECONDS = 120  # VISIBILITY_TIMEOUT_SECONDS when a test makes one without a config


def receipt_is_gone(code: str) -> bool:
    """SQS (or the in-memory queue) says this receipt handle no longer names a message we hold (an
    expired one comes as InvalidParameterValue, "… The receipt handle has expired.")."""
    gone = ("ReceiptHandleIsInvalid", "MessageNotInflight", "receipt handle has expired")
    return any(sign in code for sign in gone)


class VisibilityKeeper:
    def __init__(self, queues: Queues, visibility_seconds: int = DEFAULT_VISIBILITY_SECONDS):
        self.queues = queues
        self.visibility_seconds = visibility_seconds
        self.renew_every = visibility_seconds / 4  # three renewals can fail before a message comes back
        self._held: dict[str, Received] = {}
        self._lock = threading.Lock()
        # Held through a renewal round: a release waits for it, so no renewal in flight can undo
        # the visibility the releaser sets next (a message handed back staying hidden a whole timeout long).
        self._round = threading.RLock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_forever, name="visibility", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def hold(self, message: Received) -> None:
        """Renewed from now on; the receive itself hid it for `visibility_seconds`."""
        with self._lock:
            self._held[message.message_id] = message

    def release(self, message: Received) -> None:
        with self._round, self._lock:
            self._held.pop(message.message_id, None)

    def held(self) -> list[Received]:
        with self._lock:
            return list(self._held.values())

    def renew(self) -> None:
        """One round: every held message hidden for another `visibility_seconds`, in batches."""
        with self._round:
            held = self.held()
            try:
                errors = self.queues.extend_many([(m, self.visibility_seconds) for m in held]) if held else []
            except Exception as error:  # a passing fault: the next round tries again
                log.warning("could not extend visibility: %s", error, extra={"messages": len(held)})
                return
            self._after_round(held, errors)

    def _after_round(self, held: list[Received], errors: list[str | None]) -> None:
        for message, error in zip(held, errors, strict=True):
            if error is None:
                continue
            if receipt_is_gone(error):  # deleted, or received again with a new receipt: not ours to renew
                self.release(message)
                log.info("stopped renewing a message we no longer hold", extra={"messageId": message.message_id})
            else:
                log.warning("could not extend visibility: %s", error, extra={"messageId": message.message_id})

    def _renew_forever(self) -> None:
        while not self._stop.wait(self.renew_every):
            self.renew()
