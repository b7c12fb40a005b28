"""A container's inbox: an SQS queue of its own, where other containers forward the commands for the
workspaces it owns (supervisor/ownership.py), so an interrupt reaches the running worker wherever the
message landed. Created at start, named after the input queue and the container, removed on a clean exit;
a dead container's inbox is drained by whoever takes over its workspaces, then removed.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from supervisor.queues import Received

log = logging.getLogger("supervisor.inbox")
MAX_QUEUE_NAME = 80
RETENTION_SECONDS = 4 * 24 * 3600


def inbox_name(input_queue_url: str, owner: str) -> str:
    """`{input queue}-inbox-{owner}`, cut to SQS's 80 characters, the owner's end kept."""
    suffix = "-inbox-" + re.sub(r"[^A-Za-z0-9_-]", "-", owner)
    base = input_queue_url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".fifo")
    return base[: MAX_QUEUE_NAME - len(suffix)] + suffix[-MAX_QUEUE_NAME:]


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
