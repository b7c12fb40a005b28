"""Make moto's SQS keep up with a flood, for the local stack, the tests and the benchmarks.

moto 5.2's SQS is quadratic in queue depth: `ReceiveMessage` checks each candidate's retention by
computing *every* queue attribute (the approximate counts walk all messages), every message's
visibility check turns the clock into a datetime and back, and `DeleteMessage` walks the whole queue
twice, building a list of receipt handles per message. Measured here at 2,000 queued messages: 1.1 s
per receive and 0.1 s per `SendMessageBatch`, so a fuzz flood measured moto rather than the supervisor.
These are replaced by equivalents that give the same results: the first two in constant time, the
delete stopping at the message it deletes (near the front: the oldest are handled first).
Real SQS has neither cost; nothing of ours runs on this outside supervisor/local and tests/.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

_applied = False


def speed_up_moto_sqs() -> None:
    global _applied
    if _applied:
        return
    from moto.core import utils as core_utils
    from moto.sqs import models

    slow_unix_time_millis = core_utils.unix_time_millis

    def unix_time_millis(dt: datetime | None = None) -> float:
        # moto's own computes "now" as (utcnow() - epoch) through datetimes: the same number, slowly.
        return time.time() * 1000.0 if dt is None else slow_unix_time_millis(dt)

    def retained(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return retention + message.sent_timestamp / 1000 > time.time()

    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return  # deleted already: moto (and SQS) take that quietly
        for index, message in enumerate(self._messages):
            if message.receipt_handle == receipt_handle or receipt_handle in message._old_receipt_handles:
                self.pending_messages.discard(message)
                self.deleted_messages.update(message.all_receipt_handles)
                del self._messages[index]
                return
        raise models.ReceiptHandleIsInvalid()

    models.unix_time_millis = unix_time_millis
    models.SQSBackend.is_message_valid_based_on_retention_period = retained
    models.Queue.delete_message = delete_message
    _applied = True
