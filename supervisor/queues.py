"""The supervisor's only door to SQS: receive one by one; respond, dead-letter, extend and delete in batches."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from supervisor.contract.config import Config

log = logging.getLogger("supervisor.queues")
# SQS's limits on one message and on one batch request (moto's 256 KiB; AWS now takes 1 MiB for both).
MAX_MESSAGE_BYTES = MAX_BATCH_BYTES = 256 * 1024
ATTRIBUTE_ROOM = 512  # our message attributes: names, types and values (reasons are cut to 256)
# When a command was first sent (SQS's SentTimestamp, ms): a copy we send again (put back, forwarded to
# an owner's inbox) carries it, so a copy that arrives late is still known as the older command.
FIRST_SENT_ATTRIBUTE = "firstSentMs"


@dataclass(frozen=True)
class Received:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    queue_url: str = ""  # the queue it came from, when not the input queue (an owner's inbox)
    first_sent_ms: int = 0  # when the command was first sent (FIRST_SENT_ATTRIBUTE); 0: not known

    def resend_attributes(self) -> dict[str, str]:
        """The attributes a copy of this message is sent again with: when it was first sent."""
        return {FIRST_SENT_ATTRIBUTE: str(self.first_sent_ms)} if self.first_sent_ms > 0 else {}


def read_first_sent_ms(sent_timestamp: str | None, carried: str | None) -> int:
    """When a received message's command was first sent: the time a copy carries, else its own send
    time. A carried time later than the copy's own send, or not a number, is ignored."""
    sent, first = _milliseconds(sent_timestamp), _milliseconds(carried)
    return first if 0 < first <= (sent or first) else sent


def _milliseconds(text: str | None) -> int:
    """A time in ms as SQS writes it (ASCII digits, far below 16 of them); anything else is 0, not known."""
    return int(text) if text and len(text) <= 15 and text.isascii() and text.isdigit() else 0


def sqs_client(config: Config) -> Any:
    return boto3.client(
        "sqs",
        region_name=config.aws_region,
        endpoint_url=config.aws_endpoint_url,
        # The read timeout must outlast the long poll.
        config=BotoConfig(
            read_timeout=config.receive_wait_seconds + 10, retries={"mode": "standard", "max_attempts": 5}
        ),
    )


def sendable_json(body: dict[str, Any]) -> str:
    """JSON that SQS takes whatever the body holds: a lone surrogate (not Unicode) is written as its
    JSON escape, which readers decode to the same string, instead of making the send fail."""
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")


def is_fifo(queue_url: str | None) -> bool:
    return bool(queue_url) and str(queue_url).endswith(".fifo")


def message_group(body: str, default_repo_url: str | None = None) -> str:
    """A FIFO send's MessageGroupId: the workspace the body names (`client/user/repo`, as far as it
    says), else its chat thread, else one group for everything else (invalid bodies)."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        return "other"
    client, user = value.get("projectId") or value.get("clientId"), value.get("userId")
    if isinstance(client, str) and isinstance(user, str):
        repo = value.get("repoUrl") or (default_repo_url or "").replace("{clientId}", client)
        name = str(repo).rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") if repo else ""
        # An interrupt forwarded to a FIFO inbox must not wait behind the very command it interrupts.
        kind = ["interrupt"] if value.get("type") == "interrupt" else []
        return _group_text("/".join(part for part in (*kind, client, user, name) if part))
    thread = value.get("sessionId") or value.get("chatThreadId") or value.get("threadId") or value.get("commandId")
    return _group_text(str(thread)) if thread else "other"


def _group_text(text: str) -> str:
    """Within SQS's rules for a group id: 128 printable ASCII characters (else a digest of it)."""
    if len(text) <= 128 and text.isascii() and text.isprintable() and " " not in text:
        return text
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()


def deduplication_id(*parts: str) -> str:
    """A FIFO send's MessageDeduplicationId: the same for a resend of the same thing (deduplicated by
    SQS for five minutes), different for anything else."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "backslashreplace")).hexdigest()


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

    def receive(
        self, max_messages: int = 1, wait_seconds: int | None = None, queue_url: str | None = None
    ) -> list[Received]:
        """From the input queue, or from `queue_url` (an inbox); `wait_seconds` default RECEIVE_WAIT_SECONDS."""
        reply = self.client.receive_message(
            QueueUrl=queue_url or self.config.input_queue_url,
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            WaitTimeSeconds=self.config.receive_wait_seconds if wait_seconds is None else wait_seconds,
            # Our lease from the first moment: even a receive whose reply never reaches us (a killed
            # supervisor's long poll) holds a message no longer than this, not the queue's default.
            VisibilityTimeout=self.config.visibility_timeout_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            MessageAttributeNames=[FIRST_SENT_ATTRIBUTE],
        )
        return [
            Received(
                message_id=m["MessageId"],
                receipt_handle=m["ReceiptHandle"],
                body=m.get("Body", ""),
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
                queue_url=queue_url or "",
                first_sent_ms=read_first_sent_ms(
                    m.get("Attributes", {}).get("SentTimestamp"),
                    m.get("MessageAttributes", {}).get(FIRST_SENT_ATTRIBUTE, {}).get("StringValue"),
                ),
            )
            for m in reply.get("Messages", [])
        ]

    # Batched calls: each returns one outcome per item, in order (None: done; else SQS's error code and message).

    def respond_many(self, bodies: list[dict[str, Any]]) -> list[str | None]:
        """Responses and progress events to the output queue (with none configured: nothing to do)."""
        if not self.config.output_queue_url:
            return [None] * len(bodies)
        url = self.config.output_queue_url
        entries = []
        for body in bodies:
            text = sendable_json(body)
            entry = {
                "MessageBody": text,
                "MessageAttributes": _attributes(commandId=body.get("commandId"), sessionId=body.get("sessionId")),
            }
            if is_fifo(url):  # the chat thread's events in order; a resend of the same body deduplicated
                thread = str(body.get("sessionId") or body.get("commandId") or "other")
                entry.update(MessageGroupId=_group_text(thread), MessageDeduplicationId=deduplication_id(text))
            entries.append(entry)
        return self._batched("send_message", url, entries)

    def dead_letter_many(self, items: list[tuple[Received, str]]) -> list[str | None] | None:
        """Copies of invalid messages to DLQ_URL; None when none is configured (the redrive policy acts)."""
        if not self.config.dlq_url:
            return None
        entries = []
        for message, reason in items:
            body = message.body or "(empty body)"
            attributes = _attributes(error=reason[:256], sourceMessageId=message.message_id)
            # A body at SQS's size limit fits only alone: its copy goes without the attributes.
            too_big = len(body.encode("utf-8")) + ATTRIBUTE_ROOM > MAX_MESSAGE_BYTES
            entry = {"MessageBody": body} if too_big else {"MessageBody": body, "MessageAttributes": attributes}
            if is_fifo(self.config.dlq_url):
                group = message_group(body, self.config.repo_url)
                entry.update(MessageGroupId=group, MessageDeduplicationId=deduplication_id("dlq", message.message_id))
            entries.append(entry)
        return self._batched("send_message", self.config.dlq_url, entries)

    def delete_many(self, messages: list[Received]) -> list[str | None]:
        entries = [(m, {"ReceiptHandle": m.receipt_handle}) for m in messages]
        return self._per_queue("delete_message", entries)

    def extend_many(self, items: list[tuple[Received, int]]) -> list[str | None]:
        """Set each message's visibility to that many seconds from now."""
        entries = [(m, {"ReceiptHandle": m.receipt_handle, "VisibilityTimeout": s}) for m, s in items]
        return self._per_queue("change_message_visibility", entries)

    def _per_queue(self, action: str, entries: list[tuple[Received, dict[str, Any]]]) -> list[str | None]:
        """`_batched` on each message's own queue; the outcomes in the order given."""
        outcomes: list[str | None] = [None] * len(entries)
        queues: dict[str, list[int]] = {}
        for index, (message, _) in enumerate(entries):
            queues.setdefault(message.queue_url or self.config.input_queue_url, []).append(index)
        for url, indexes in queues.items():
            results = self._batched(action, url, [entries[i][1] for i in indexes])
            for index, outcome in zip(indexes, results, strict=True):
                outcomes[index] = outcome
        return outcomes

    # Single calls: the sharing code's (supervisor/sharing/), on the input queue and the inboxes.

    def send_to(
        self,
        queue_url: str,
        body: str,
        *,
        delay: int = 0,
        attributes: dict[str, str] | None = None,
        deduplication: str = "",
    ) -> None:
        """One message to that queue ("": the input queue); raises when SQS did not take it. On a FIFO
        queue: grouped by workspace, deduplicated by `deduplication` (what this send is: a resend of the
        same is dropped by SQS), and never delayed (FIFO queues take no delay per message)."""
        extra: dict[str, Any] = {"MessageAttributes": _attributes(**attributes)} if attributes else {}
        queue_url = queue_url or self.config.input_queue_url or ""
        if is_fifo(queue_url):
            extra["MessageGroupId"] = message_group(body, self.config.repo_url)
            extra["MessageDeduplicationId"] = deduplication_id(deduplication or body)
        else:
            extra["DelaySeconds"] = delay
        self.client.send_message(QueueUrl=queue_url, MessageBody=body, **extra)

    def create_queue(self, name: str, attributes: dict[str, str], tags: dict[str, str]) -> str:
        url: str = self.client.create_queue(QueueName=name, Attributes=attributes, tags=tags)["QueueUrl"]
        return url

    def depth(self, queue_url: str) -> int | None:
        """Messages in the queue, visible, in flight or delayed (approximate, as SQS counts them); None: no
        such queue."""
        names = [f"ApproximateNumberOfMessages{kind}" for kind in ("", "NotVisible", "Delayed")]
        try:
            attributes = self.client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
        except self.client.exceptions.QueueDoesNotExist:
            return None
        return sum(int(attributes.get(name, "0")) for name in names)

    def delete_queue(self, queue_url: str) -> None:
        """Delete the queue; one already gone counts as deleted."""
        with contextlib.suppress(self.client.exceptions.QueueDoesNotExist):
            self.client.delete_queue(QueueUrl=queue_url)

    def max_receive_count(self) -> int | None:
        """The input queue's redrive maxReceiveCount: the delivery after which SQS dead-letters a message."""
        reply = self.client.get_queue_attributes(QueueUrl=self.config.input_queue_url, AttributeNames=["RedrivePolicy"])
        policy = reply.get("Attributes", {}).get("RedrivePolicy")
        return int(json.loads(policy)["maxReceiveCount"]) if policy else None

    def _batched(self, action: str, queue_url: str, entries: list[dict[str, Any]]) -> list[str | None]:
        """`{action}_batch` in chunks SQS takes; a chunk the call refuses as a whole (one entry too
        large, say) is tried in halves, so one bad entry fails alone."""
        outcomes: list[str | None] = []
        for chunk in _chunks(entries):
            batch = [{"Id": str(i), **entry} for i, entry in enumerate(chunk)]
            try:
                reply = getattr(self.client, f"{action}_batch")(QueueUrl=queue_url, Entries=batch)
            except Exception as error:
                if len(chunk) == 1 or not _refused_request(error):  # SQS unreachable: the whole chunk failed
                    outcomes += [_error_code(error)] * len(chunk)
                    continue
                outcomes += self._batched(action, queue_url, chunk[: len(chunk) // 2])
                outcomes += self._batched(action, queue_url, chunk[len(chunk) // 2 :])
                continue
            failed = {f["Id"]: f"{f.get('Code') or 'Failed'}: {f.get('Message', '')}" for f in reply.get("Failed", [])}
            outcomes += [failed.get(str(i)) for i in range(len(chunk))]
        return outcomes


def _chunks(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """At most ten entries and MAX_BATCH_BYTES of bodies a chunk (SQS's limits on one batch call)."""
    chunks: list[list[dict[str, Any]]] = []
    size = 0
    for entry in entries:
        entry_size = len(entry.get("MessageBody", "").encode("utf-8")) + ATTRIBUTE_ROOM
        if not chunks or len(chunks[-1]) == 10 or size + entry_size > MAX_BATCH_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += entry_size
    return chunks


def _refused_request(error: Exception) -> bool:
    """SQS refused what the request held (a 4xx other than throttling), not a passing fault."""
    status = getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return 400 <= status < 500 and "Throttl" not in _error_code(error)


def _error_code(error: Exception) -> str:
    return getattr(error, "response", {}).get("Error", {}).get("Code") or type(error).__name__
