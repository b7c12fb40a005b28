"""The supervisor's only door to SQS: receive, respond, dead-letter, extend, delete."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from supervisor.contract.config import Config

log = logging.getLogger("supervisor.queues")
LONG_POLL_SECONDS = 20


@dataclass(frozen=True)
class Received:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int


def sqs_client(config: Config) -> Any:
    return boto3.client(
        "sqs",
        region_name=config.aws_region,
        endpoint_url=config.aws_endpoint_url,
        # The long poll itself takes 20 s; the read timeout must outlast it.
        config=BotoConfig(read_timeout=LONG_POLL_SECONDS + 10, retries={"mode": "standard", "max_attempts": 5}),
    )


def sendable_json(body: dict[str, Any]) -> str:
    """JSON that SQS takes whatever the body holds: a lone surrogate (not Unicode) is written as its
    JSON escape, which readers decode to the same string, instead of making the send fail."""
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")


def _attributes(**values: str | None) -> dict[str, dict[str, str]]:
    return {
        k: {"DataType": "String", "StringValue": v.encode("utf-8", "backslashreplace").decode("utf-8")}
        for k, v in values.items()
        if v
    }


class Queues:
    def __init__(self, config: Config, client: Any | None = None):
        self.config = config
        self.client = client or sqs_client(config)

    def receive(self, max_messages: int = 1, wait_seconds: int = LONG_POLL_SECONDS) -> list[Received]:
        reply = self.client.receive_message(
            QueueUrl=self.config.input_queue_url,
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            WaitTimeSeconds=wait_seconds,
            # Our lease from the first moment: even a receive whose reply never reaches us (a killed
            # supervisor's long poll) holds a message no longer than this, not the queue's default.
            VisibilityTimeout=self.config.visibility_timeout_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return [
            Received(
                message_id=m["MessageId"],
                receipt_handle=m["ReceiptHandle"],
                body=m.get("Body", ""),
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
            )
            for m in reply.get("Messages", [])
        ]

    def respond(self, body: dict[str, Any]) -> bool:
        """Send a response or progress event; False when no output queue is configured."""
        if not self.config.output_queue_url:
            return False
        self.client.send_message(
            QueueUrl=self.config.output_queue_url,
            MessageBody=sendable_json(body),
            MessageAttributes=_attributes(commandId=body.get("commandId"), sessionId=body.get("sessionId")),
        )
        return True

    def dead_letter(self, message: Received, reason: str) -> bool:
        """Copy an invalid message to DLQ_URL; False when none is configured (the redrive policy acts)."""
        if not self.config.dlq_url:
            return False
        self.client.send_message(
            QueueUrl=self.config.dlq_url,
            MessageBody=message.body or "(empty body)",
            MessageAttributes=_attributes(error=reason[:256], sourceMessageId=message.message_id),
        )
        return True

    def max_receive_count(self) -> int | None:
        """The input queue's redrive maxReceiveCount: the delivery after which SQS dead-letters a message."""
        reply = self.client.get_queue_attributes(QueueUrl=self.config.input_queue_url, AttributeNames=["RedrivePolicy"])
        policy = reply.get("Attributes", {}).get("RedrivePolicy")
        return int(json.loads(policy)["maxReceiveCount"]) if policy else None

    def delete(self, message: Received) -> None:
        self.client.delete_message(QueueUrl=self.config.input_queue_url, ReceiptHandle=message.receipt_handle)

    def extend(self, message: Received, seconds: int) -> None:
        self.client.change_message_visibility(
            QueueUrl=self.config.input_queue_url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=seconds
        )
