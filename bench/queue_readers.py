"""What the benchmarks share: a consumer for the output queue and the DLQ, and moto's CPU."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import psutil

from supervisor.local.stack import LocalStack


class Reader(threading.Thread):
    """Empties one queue continuously, as its consumer would: the output queue's responses and progress
    (with the time each was read), or the DLQ's copies (their source message ids)."""

    def __init__(self, stack: LocalStack, name: str):
        super().__init__(daemon=True)
        self.stack, self.url, self.stop = stack, stack.queues[name], threading.Event()
        self.dead_letter_queue = name == "dlq"
        self.bodies: list[dict[str, Any]] = []
        self.sources: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            reply = self.stack.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
            )
            messages = reply.get("Messages", [])
            for message in messages:
                source = message.get("MessageAttributes", {}).get("sourceMessageId", {}).get("StringValue")
                if self.dead_letter_queue:
                    self.sources.append(source or message["MessageId"])
                    continue
                body = json.loads(message["Body"])
                body["_read"] = time.monotonic()
                self.bodies.append(body)
            if messages:
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
                self.stack.sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)


def moto_cpu_seconds() -> float:
    """CPU the fake AWS used (its own process): what bounds a flood's throughput on this machine."""
    for child in psutil.Process().children():
        if "moto_process" in " ".join(child.cmdline()):
            return sum(child.cpu_times()[:2])
    return 0.0
