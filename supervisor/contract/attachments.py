"""The task shape's `attachments` and `context`: kept on the Command, checked here."""

from __future__ import annotations

import json
from typing import Any

from supervisor.contract.invalid import CONTROL_CHARS, LONE_SURROGATE, InvalidMessage

MAX_ATTACHMENTS = 20
ATTACHMENT_FIELDS = ("s3Uri", "key", "name", "contentType")
MAX_ATTACHMENT_FIELD_LENGTH = 2048
MAX_CONTEXT_BYTES = 16 * 1024


def _plain_text(value: str) -> bool:
    return not CONTROL_CHARS.search(value) and not LONE_SURROGATE.search(value)


def check_attachments(value: object, command_id: str | None = None) -> tuple[dict[str, str], ...]:
    """`attachments`: up to MAX_ATTACHMENTS objects; their string fields among ATTACHMENT_FIELDS are kept."""
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
        if not attachment:
            raise InvalidMessage(f"attachments[{index}] has none of {', '.join(ATTACHMENT_FIELDS)}", command_id)
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
