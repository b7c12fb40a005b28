"""An in-memory implementation of `Queues` (as dramatiq's StubBroker is of its brokers): the input
queue with SQS's visibility rules, the output queue and the dead-letter queue as lists. For tests of
the loop that need no SQS, no network and no process; also handy for trying the supervisor by hand."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from supervisor.queues import FIRST_SENT_ATTRIBUTE, Received, read_first_sent_ms


class ReceiptHandleIsInvalid(Exception):
    """The receipt handle is not the message's current one (deleted, or received again since)."""


@dataclass
class _Stored:
    message_id: str
    body: str
    visible_at: float = 0.0
    receive_count: int = 0
    receipt: str = ""
    first_sent_ms: int = 0


class MemoryQueues:
    def __init__(self, clock: Callable[[], float] = time.monotonic, max_receives: int | None = None):
        self.clock = clock
        self.max_receives = max_receives  # the redrive policy's maxReceiveCount, if the queue has one
        self.responses: list[dict[str, Any]] = []
        self.dead_letters: list[tuple[Received, str]] = []
        self._input: dict[str, _Stored] = {}
        self._ids = itertools.count(1)
        self._last_sent_ms = 0  # SentTimestamp of the last send: every send is later than the one before
        self._lock = threading.Condition()

    # What a test does -----------------------------------------------------------------------------

    def send(self, body: dict[str, Any] | str, *, first_sent: str | None = None) -> str:
        """Put a message on the input queue; returns its id. `first_sent`: a copy's FIRST_SENT_ATTRIBUTE."""
        with self._lock:
            message_id = f"m-{next(self._ids)}"
            self._last_sent_ms = max(self._last_sent_ms + 1, time.time_ns() // 1_000_000)
            text = body if isinstance(body, str) else json.dumps(body)
            first_sent_ms = read_first_sent_ms(str(self._last_sent_ms), first_sent)
            self._input[message_id] = _Stored(message_id, text, first_sent_ms=first_sent_ms)
            self._lock.notify_all()
            return message_id

    def send_to(
        self,
        queue_url: str,
        body: str,
        *,
        delay: int = 0,
        attributes: dict[str, str] | None = None,
        deduplication: str = "",
    ) -> None:
        """The input queue only (the sharing code's other queues are SQS's)."""
        message_id = self.send(body, first_sent=(attributes or {}).get(FIRST_SENT_ATTRIBUTE))
        if delay:
            with self._lock:
                self._input[message_id].visible_at = self.clock() + delay

    def in_flight(self) -> list[str]:
        """Ids of messages on the input queue that are invisible now."""
        with self._lock:
            return [m.message_id for m in self._input.values() if m.visible_at > self.clock()]

    def remaining(self) -> list[str]:
        with self._lock:
            return list(self._input)

    # The Queues interface -------------------------------------------------------------------------

    def receive(
        self, max_messages: int = 1, wait_seconds: float | None = None, queue_url: str | None = None
    ) -> list[Received]:
        assert queue_url is None, "in-memory queues have no inboxes"
        deadline = time.monotonic() + (1.0 if wait_seconds is None else wait_seconds)
        with self._lock:
            while True:
                now = self.clock()
                ready = [m for m in self._input.values() if m.visible_at <= now][:max_messages]
                if ready or time.monotonic() >= deadline:
                    break
                self._lock.wait(min(0.05, max(0.0, deadline - time.monotonic())))
            received = []
            for stored in ready:
                stored.receive_count += 1
                stored.receipt = f"{stored.message_id}/{stored.receive_count}"
                stored.visible_at = now + 30
                received.append(
                    Received(
                        stored.message_id,
                        stored.receipt,
                        stored.body,
                        stored.receive_count,
                        first_sent_ms=stored.first_sent_ms,
                    )
                )
            return received

    def respond(self, body: dict[str, Any]) -> bool:
        json.dumps(body)  # a body SQS could not take fails here as it would there
        self.responses.append(body)
        return True

    def dead_letter(self, message: Received, reason: str) -> bool:
        self.dead_letters.append((message, reason))
        return True

    def max_receive_count(self) -> int | None:
        return self.max_receives

    def delete(self, message: Received) -> None:
        with self._lock:
            self._current(message)
            del self._input[message.message_id]

    def extend(self, message: Received, seconds: int) -> None:
        with self._lock:
            self._current(message).visible_at = self.clock() + seconds
            self._lock.notify_all()

    # The batched calls, one item at a time (as `Queues` reports them: None, or an error code).

    def respond_many(self, bodies: list[dict[str, Any]]) -> list[str | None]:
        return [_outcome(self.respond, body) for body in bodies]

    def dead_letter_many(self, items: list[tuple[Received, str]]) -> list[str | None]:
        return [_outcome(self.dead_letter, message, reason) for message, reason in items]

    def delete_many(self, messages: list[Received]) -> list[str | None]:
        return [_outcome(self.delete, message) for message in messages]

    def extend_many(self, items: list[tuple[Received, int]]) -> list[str | None]:
        return [_outcome(self.extend, message, seconds) for message, seconds in items]

    def _current(self, message: Received) -> _Stored:
        stored = self._input.get(message.message_id)
        if stored is None or stored.receipt != message.receipt_handle:
            raise ReceiptHandleIsInvalid(message.receipt_handle)
        return stored


def _outcome(call: Callable[..., object], *args: Any) -> str | None:
    try:
        call(*args)
    except Exception as error:
        return type(error).__name__
    return None
