"""A message's `attachments` (every shape) and the task shape's `context`: checked here, kept on the Command.

An attachment names one S3 object, by `s3Uri` (`s3://bucket/key`) or by `key` (in ATTACHMENTS_BUCKET): exactly
one of the two. Its form is checked here (an INVALID_MESSAGE); whether its bucket is allowed, and what the
object holds, the worker decides (steps/attachments: INVALID_ATTACHMENT).
"""

from __future__ import annotations

import json
import re
from typing import Any

from supervisor.contract.invalid import CONTROL_CHARS, LONE_SURROGATE, InvalidMessage

MAX_ATTACHMENTS = 20
ATTACHMENT_FIELDS = ("s3Uri", "key", "name", "contentType")
MAX_ATTACHMENT_FIELD_LENGTH = 2048
MAX_CONTEXT_BYTES = 16 * 1024
MAX_KEY_BYTES = 1024  # S3's own limit
# S3's bucket naming rules (3-63 of a-z 0-9 . -, a letter or digit at both ends); the key is the rest.
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
S3_URI = re.compile(r"s3://([^/]*)/(.*)", re.DOTALL)


def _plain_text(value: str) -> bool:
    return not CONTROL_CHARS.search(value) and not LONE_SURROGATE.search(value)


def key_problem(key: str) -> str | None:
    """Why `key` cannot name an attachment, if it cannot. S3 keys are flat strings, but an HTTP client may
    collapse `a/../b` into `b`: a key that reads as a path leaving its folder is refused, not sent."""
    if len(key.encode()) > MAX_KEY_BYTES:
        return f"is longer than {MAX_KEY_BYTES} bytes"
    if key.startswith("/"):
        return "starts with /"
    if any(part in ("", ".", "..") for part in key.split("/")):
        return "has an empty, . or .. part"
    return None


def split_s3_uri(uri: str) -> tuple[str, str] | str:
    """(bucket, key) of `s3://bucket/key`, or why it is not one. Taken literally: no %-decoding."""
    found = S3_URI.fullmatch(uri)
    if not found:
        return "is not an s3://bucket/key URI"
    bucket, key = found.groups()
    if not BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        return f"names a bucket that is not a valid S3 bucket name ({bucket[:80]!r})"
    problem = key_problem(key)
    return f"has a key that {problem}" if problem else (bucket, key)


def _source_problem(attachment: dict[str, str]) -> str | None:
    """Exactly one of s3Uri and key, well formed."""
    if ("s3Uri" in attachment) == ("key" in attachment):
        return "has both s3Uri and key: give one" if "key" in attachment else "needs s3Uri or key"
    if "key" in attachment:
        problem = key_problem(attachment["key"])
        return f".key {problem}" if problem else None
    split = split_s3_uri(attachment["s3Uri"])
    return f".s3Uri {split}" if isinstance(split, str) else None


def check_attachments(value: object, command_id: str | None = None) -> tuple[dict[str, str], ...]:
    """`attachments`: up to MAX_ATTACHMENTS objects; their string fields among ATTACHMENT_FIELDS are kept,
    and each names its object by exactly one of `s3Uri` and `key`."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise InvalidMessage("attachments must be a list", command_id)
    if len(value) > MAX_ATTACHMENTS:
        raise InvalidMessage(f"attachments has {len(value)} items, at most {MAX_ATTACHMENTS} are accepted", command_id)
    kept: list[dict[str, str]] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidMessage(f"attachments[{index}] must be an object", command_id)
        attachment: dict[str, str] = {}
        for name in ATTACHMENT_FIELDS:
            text = item.get(name)
            if text is None:
                continue
            if not isinstance(text, str) or not text:
                raise InvalidMessage(f"attachments[{index}].{name} must be a non-empty string", command_id)
            if len(text) > MAX_ATTACHMENT_FIELD_LENGTH or not _plain_text(text):
                raise InvalidMessage(
                    f"attachments[{index}].{name} is longer than {MAX_ATTACHMENT_FIELD_LENGTH} characters, "
                    "or holds control characters or invalid Unicode",
                    command_id,
                )
            attachment[name] = text
        problem = _source_problem(attachment)
        if problem:
            separator = "" if problem.startswith(".") else " "
            raise InvalidMessage(f"attachments[{index}]{separator}{problem}", command_id)
        kept.append(attachment)
    return tuple(kept)


def check_context(value: object, command_id: str | None = None) -> dict[str, Any] | None:
    """`context`: a JSON object of at most MAX_CONTEXT_BYTES serialised (UTF-8, compact)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidMessage("context must be a JSON object", command_id)
    try:
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode())
    except (ValueError, TypeError, RecursionError, UnicodeEncodeError):
        raise InvalidMessage("context is not plain JSON (NaN, Infinity or invalid Unicode in it)", command_id) from None
    if size > MAX_CONTEXT_BYTES:
        raise InvalidMessage(f"context is larger than {MAX_CONTEXT_BYTES // 1024} KiB serialised", command_id)
    return value
