"""Every outcome of a message on SQS: answered then deleted, handed back, retried later, dead-lettered.

The loop decides; this carries it out, off the loop: orders queue up and one thread sends them in
batches (`SendMessageBatch`, `DeleteMessageBatch`, `ChangeMessageVisibilityBatch`), so a flood of
invalid messages or a slow SQS (boto3's retries sleep here) never holds up the next decision. Until
`start()` (the loop's unit tests) and after `close()`, orders are carried out at once, in the caller.

SQS failures are logged, never raised: a message we fail to delete or re-time comes back when its
visibility timeout runs out, and is handled again.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from supervisor.queues import Queues, Received
from supervisor.task_tokens import Callback, StepFunctions
from supervisor.visibility import VisibilityKeeper

log = logging.getLogger("supervisor.delivery")
RESPONSE_RETRY_SECONDS = 30  # a message whose response could not be sent comes back this much later
MAX_ORDERS_PER_ROUND = 200
MAX_DELAY_SECONDS = 900  # SQS's longest DelaySeconds


@dataclass(frozen=True)
class Outcome:
    """What becomes of a message: deleted, copied to the DLQ then deleted, visible again in `seconds`,
    requeued (a copy on the input queue `seconds` later, then deleted), or only released (no longer renewed:
    it comes back when its current visibility runs out)."""

    kind: Literal["delete", "dead_letter", "visible_in", "requeue", "release"]
    seconds: int = 0
    reason: str = ""


def visible_in(seconds: int) -> Outcome:
    return Outcome("visible_in", seconds=seconds)


DELETE = Outcome("delete")
RELEASE = Outcome("release")
RETRY_RESPONSE = visible_in(RESPONSE_RETRY_SECONDS)


def dead_letter(reason: str) -> Outcome:
    return Outcome("dead_letter", reason=reason)


@dataclass(frozen=True)
class Order:
    """A body to send first (if any), then the message's outcome: `then` once the body is out,
    `otherwise` when it could not be sent (CONTRACT §3: deleted only after its response is sent)."""

    message: Received | None = None
    body: dict[str, Any] | None = None
    then: Outcome | None = None
    otherwise: Outcome | None = None
    on_sent: Callable[[], None] | None = None
    # A Step Functions callback made once the body is out (supervisor/task_tokens.py); its failure
    # counts as the body's: the message is kept, and its redelivery sends both again.
    callback: Callback | None = None


class Delivery:
    def __init__(self, queues: Queues, visibility: VisibilityKeeper, stepfunctions: StepFunctions | None = None):
        self.queues = queues
        self.visibility = visibility
        self.stepfunctions = stepfunctions or StepFunctions(getattr(queues, "config", None))
        self._orders: queue.Queue[Order | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        # Messages made invisible for a while (a dead worker's retry, a response to send again), by id:
        # a clean exit makes those of an inbox visible again before the inbox goes (supervisor/sharing/claims.py).
        self.put_off: dict[str, Received] = {}

    # What the loop asks for -----------------------------------------------------------------------

    def send(self, body: dict[str, Any]) -> None:
        """A progress event or a response with no message to settle."""
        self._put(Order(body=body))

    def answer(
        self,
        message: Received,
        response: dict[str, Any],
        *,
        then: Outcome = DELETE,
        otherwise: Outcome = RETRY_RESPONSE,
        on_sent: Callable[[], None] | None = None,
        callback: Callback | None = None,
    ) -> None:
        self._put(Order(message, response, then, otherwise, on_sent, callback))

    def delete(self, message: Received) -> None:
        self._put(Order(message, then=DELETE))

    def give_back(self, message: Received) -> None:
        """Visible again at once, for this or another consumer."""
        self.retry_later(message, 0)

    def retry_later(self, message: Received, seconds: int) -> None:
        self._put(Order(message, then=visible_in(seconds)))

    def requeue(self, message: Received, seconds: int) -> None:
        """Back on the input queue `seconds` later as a new message, the original deleted: for a command that
        waits (an owner's inbox unreachable, a lease moving) rather than fails, since every receive of
        the original would count towards the queue's maxReceiveCount and end it dead-lettered."""
        self._put(Order(message, then=Outcome("requeue", seconds=seconds)))

    def dead_letter(self, message: Received, reason: str) -> None:
        """Copy to DLQ_URL and delete; with no DLQ_URL leave it to the queue's redrive policy."""
        self._put(Order(message, then=dead_letter(reason)))

    # The sending thread ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._carry_out_forever, name="delivery", daemon=True)
        self._thread.start()

    def close(self, timeout: float) -> bool:
        """Carry out what is queued (within `timeout`); False when some of it was left undone."""
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        self._orders.put(None)
        thread.join(timeout)
        left = self._orders.qsize()
        if thread.is_alive() or left:
            log.error("SQS orders left undone at exit; their messages come back", extra={"orders": left})
            return False
        return True

    def _put(self, order: Order) -> None:
        if self._thread is None:
            self.carry_out([order])
        else:
            self._orders.put(order)

    def _carry_out_forever(self) -> None:
        while (first := self._orders.get()) is not None:
            orders = [first]
            while len(orders) < MAX_ORDERS_PER_ROUND:
                try:
                    order = self._orders.get_nowait()
                except queue.Empty:
                    break
                if order is None:  # close(): this round is the last
                    self._orders.put(None)
                    break
                orders.append(order)
            try:
                self.carry_out(orders)
            except Exception:  # a bug of ours must not stop every later answer
                log.exception("could not carry out SQS orders", extra={"orders": len(orders)})

    def carry_out(self, orders: list[Order]) -> None:
        """Bodies first, then each message's outcome, each kind in batches."""
        bodies = [o.body for o in orders if o.body is not None]
        errors = iter(_safely(self.queues.respond_many, bodies) if bodies else [])
        outcomes: list[tuple[Received, Outcome]] = []
        for order in orders:
            sent = True
            if order.body is not None:
                error = next(errors)
                sent = error is None
                if sent and order.callback is not None:
                    error = self.stepfunctions.call(order.callback)
                    sent = error is None
                if not sent:
                    extra = {"type": order.body.get("type"), "commandId": order.body.get("commandId"), "error": error}
                    if order.message is None:
                        log.error("could not send to the output queue", extra=extra)
                    else:
                        extra["retryInSeconds"] = order.otherwise.seconds if order.otherwise else None
                        log.error("response not sent; message kept", extra=extra)
                elif order.on_sent is not None:
                    order.on_sent()
            outcome = order.then if sent else order.otherwise
            if order.message is not None and outcome is not None:
                self.visibility.release(order.message)  # before any change: a renewal must not undo it
                outcomes.append((order.message, outcome))
        self._settle(outcomes)

    def _settle(self, outcomes: list[tuple[Received, Outcome]]) -> None:
        moved, kept = self._copy_back([(m, o.seconds) for m, o in outcomes if o.kind == "requeue"])
        outcomes = [*((m, o) for m, o in outcomes if o.kind != "requeue"), *((m, DELETE) for m in moved)]
        outcomes += [(m, visible_in(seconds)) for m, seconds in kept]
        doomed = [(m, o.reason) for m, o in outcomes if o.kind == "dead_letter"]
        copied = _safely(self.queues.dead_letter_many, doomed) if doomed else []
        for (message, _), error in zip(doomed, copied or [], strict=False):
            if error is not None:  # not deleted: it comes back and is dead-lettered then
                log.error("could not dead-letter a message: %s", error, extra={"messageId": message.message_id})
        deletes = [m for m, o in outcomes if o.kind == "delete"]
        deletes += [m for (m, _), error in zip(doomed, copied or [], strict=False) if error is None]
        for message, error in zip(deletes, _safely(self.queues.delete_many, deletes) if deletes else [], strict=True):
            if error is not None:  # it comes back when its visibility timeout runs out
                log.error("could not delete a finished message: %s", error, extra={"messageId": message.message_id})
        timed = [(m, o.seconds) for m, o in outcomes if o.kind == "visible_in"]
        for (message, seconds), error in zip(
            timed, _safely(self.queues.extend_many, timed) if timed else [], strict=True
        ):
            if error is not None:  # it comes back when its current visibility runs out
                log.warning("could not change visibility: %s", error, extra={"messageId": message.message_id})
            elif seconds:
                self.put_off[message.message_id] = message
        for message in [*deletes, *(m for m, seconds in timed if not seconds)]:
            self.put_off.pop(message.message_id, None)

    def _copy_back(self, items: list[tuple[Received, int]]) -> tuple[list[Received], list[tuple[Received, int]]]:
        """Send each message's copy; those sent (the originals to delete), and those not (to retry)."""
        moved, kept = [], []
        for message, seconds in items:
            try:
                # Onto the input queue, wherever it came from: in an inbox only that (busy) owner would see it.
                delay, again = min(seconds, MAX_DELAY_SECONDS), f"requeue {message.message_id}"
                attributes = message.resend_attributes()
                self.queues.send_to("", message.body, delay=delay, deduplication=again, attributes=attributes)
            except Exception as error:  # the original comes back instead, receive count and all
                log.warning("could not requeue a message: %s", error, extra={"messageId": message.message_id})
                kept.append((message, seconds))
                continue
            moved.append(message)
        return moved, kept


def _safely(call: Callable[[list[Any]], list[str | None] | None], items: list[Any]) -> list[str | None] | None:
    """One outcome per item even when the call itself fails."""
    try:
        return call(items)
    except Exception as error:
        return [f"{type(error).__name__}: {error}"] * len(items)
