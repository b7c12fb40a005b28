"""Fetching one attachment from S3 with the worker's own credentials, never more than the limit.

The size S3 states is checked before any byte is read; the read asks for at most one byte past the
limit (a Range) and stops there, so an object that grows, or a length that lied, costs no more. The
object is read only while it is the one whose size was checked (If-Match on its ETag).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.attachments.sources import AttachmentRefused, Source
from supervisor.contract.config import Config

S3Client = Any  # botocore makes the client class at run time
CHUNK = 64 * 1024
MIB = 1024 * 1024


class AttachmentUnavailable(Exception):
    """S3 could not be reached or failed (not the attachment's fault); the message says what happened."""


@dataclass(frozen=True)
class Fetched:
    source: Source
    path: Path  # a temporary file of the worker's, outside the checkout
    size: int


def make_client(config: Config) -> S3Client:
    import boto3  # here, not at the top (as the hash deploy does): few commands have attachments
    from botocore.config import Config as BotoConfig

    return boto3.session.Session().client(
        "s3",
        region_name=config.aws_region,
        endpoint_url=config.aws_endpoint_url,
        config=BotoConfig(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3}),
    )


def megabytes(size: int) -> str:
    return f"{size:,} bytes" if size < MIB else f"{size / MIB:.1f} MiB"


def fetch(client: S3Client, source: Source, limit: int, into: Path) -> Fetched:
    """Download `source` to the file `into`; AttachmentRefused when it is missing, empty or too big."""
    from botocore.exceptions import BotoCoreError, ClientError

    where = f"s3://{source.bucket}/{source.key}"
    try:
        head = client.head_object(Bucket=source.bucket, Key=source.key)
        size = int(head["ContentLength"])
        if size > limit:
            raise AttachmentRefused(f"it is {megabytes(size)}, above the {megabytes(limit)} limit (ATTACHMENTS_MAX_MB)")
        if size == 0:
            raise AttachmentRefused("it is empty")
        reply = client.get_object(Bucket=source.bucket, Key=source.key, Range=f"bytes=0-{limit}", IfMatch=head["ETag"])
        read = _copy_at_most(reply["Body"], limit, into)
    except ClientError as error:
        raise _client_error(error, where) from None
    except BotoCoreError as error:
        raise AttachmentUnavailable(f"S3 could not be reached for {where}: {error}") from None
    if read > limit:
        raise AttachmentRefused(f"it is larger than the {megabytes(limit)} limit (ATTACHMENTS_MAX_MB)")
    return Fetched(source, into, read)


def _copy_at_most(body: Any, limit: int, into: Path) -> int:
    """Copy the stream to `into` and stop once it has given more than `limit` bytes."""
    read = 0
    fd = os.open(into, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            while read <= limit and (chunk := body.read(CHUNK)):
                read += len(chunk)
                out.write(chunk)
    finally:
        body.close()
    return read


def _client_error(error: Any, where: str) -> Exception:
    """What a botocore ClientError means for this attachment."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code == "NoSuchBucket":
        return AttachmentRefused(f"its bucket does not exist ({where})")
    if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
        return AttachmentRefused(f"it was not found ({where})")
    if status == 403:
        return AttachmentRefused(f"reading it was refused: access denied ({where})")
    if status == 412:
        return AttachmentRefused(f"it changed while it was fetched ({where})")
    if 400 <= status < 500:
        return AttachmentRefused(f"S3 refused to give it ({code or status}, {where})")
    return AttachmentUnavailable(f"S3 failed to give {where} ({code or status})")
