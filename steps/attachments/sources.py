"""Where each attachment comes from: a bucket the configuration allows, and a key in it."""

from __future__ import annotations

from dataclasses import dataclass

from supervisor.contract.attachments import key_problem, split_s3_uri
from supervisor.contract.attachments_config import AttachmentsConfig

MAX_SHOWN = 80  # characters of a sender's name in an error


class AttachmentRefused(Exception):
    """This attachment cannot be used; the message says why (the caller says which one)."""


@dataclass(frozen=True)
class Source:
    index: int  # its place in the message's `attachments`
    bucket: str
    key: str
    sent_name: str | None  # the sender's `name`: only a hint for the safe name, never a path

    @property
    def shown(self) -> str:
        return shown(self.index, {"name": self.sent_name or "", "key": self.key})


def shown(index: int, attachment: dict[str, str]) -> str:
    """How an error names an attachment: `attachments[i] ("name")`, by its name, else its key's last part."""
    name = attachment.get("name") or (attachment.get("key") or attachment.get("s3Uri") or "").rsplit("/", 1)[-1]
    name = name if len(name) <= MAX_SHOWN else name[: MAX_SHOWN - 1] + "…"
    return f'attachments[{index}] ("{name}")' if name else f"attachments[{index}]"


def resolve(index: int, attachment: dict[str, str], config: AttachmentsConfig, client_id: str) -> Source:
    """The attachment's bucket and key; AttachmentRefused unless the bucket is allowed for this client.

    The form was checked when the message was parsed; it is checked again here, since what reaches a
    worker is a record (a job, a ledger entry), and a key that reads as a path is never sent to S3."""
    name = attachment.get("name")
    if "s3Uri" in attachment:
        split = split_s3_uri(attachment["s3Uri"])
        if isinstance(split, str):
            raise AttachmentRefused(f"its s3Uri {split}")
        bucket, key = split
        if bucket not in config.allowed_buckets_for(client_id):
            raise AttachmentRefused(f"bucket {bucket} is not allowed (ATTACHMENTS_BUCKET, ATTACHMENTS_BUCKETS)")
        return Source(index, bucket, key, name)
    key = attachment.get("key")
    if key is None:
        raise AttachmentRefused("it names no s3Uri or key")
    problem = key_problem(key)
    if problem:
        raise AttachmentRefused(f"its key {problem}")
    bucket = config.default_bucket_for(client_id)
    if bucket is None:
        raise AttachmentRefused("it gives a key, and ATTACHMENTS_BUCKET is not set")
    return Source(index, bucket, key, name)
