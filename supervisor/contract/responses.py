"""Response and progress bodies (CONTRACT §2). Pure functions: no I/O here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from supervisor.contract.codes import ErrorCode
from supervisor.contract.command import SHAPE_COMMAND, SHAPE_TASK, Command

ERROR_CODES = frozenset(ErrorCode)
MAX_SUMMARY_CHARS = 16_000
MAX_FILES_LISTED = 2_000


def _with_anchor_names(body: dict[str, Any], message_shape: str) -> dict[str, Any]:
    """A task-shape command's response also carries the anchor's names: `messageId` next to `commandId`,
    `siteUrl` next to `previewUrl` (same values). Other shapes' responses are unchanged."""
    if message_shape != SHAPE_TASK:
        return body
    named: dict[str, Any] = {}
    for key, value in body.items():
        named[key] = value
        if key == "commandId":
            named["messageId"] = value
        elif key == "previewUrl":
            named["siteUrl"] = value
    return named


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def final_response(
    command: Command,
    *,
    preview_url: str,
    summary: str,
    files_changed: list[str],
    commit: str | None,
    steps: list[dict[str, Any]],
    duration_ms: int,
    build_success: bool,
    deploy_success: bool,
    push_success: bool,
    interrupted: bool = False,
    error: str | None = None,
    error_code: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if error_code is not None and error_code not in ERROR_CODES:
        raise ValueError(f"unknown error code {error_code}")
    failed = any(step["status"] == "failed" for step in steps)
    body = {
        "type": "response",
        "commandId": command.command_id,
        "sessionId": command.session_id,
        "chatThreadId": command.thread_id,
        "timestamp": now_iso(),
        "success": not failed and not interrupted and error_code is None,
        "summary": summary[:MAX_SUMMARY_CHARS],
        "filesChanged": files_changed[:MAX_FILES_LISTED],
        "previewUrl": preview_url,
        "branch": command.branch,
        "commit": commit,
        "buildSuccess": build_success,
        "deploySuccess": deploy_success,
        "pushSuccess": push_success,
        "interrupted": interrupted,
        "error": error,
        "errorCode": error_code,
        "durationMs": duration_ms,
        "steps": steps,
    }
    body = _with_anchor_names(body, command.message_shape)
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return body


def failure_response(
    command: Command,
    *,
    preview_url: str,
    error_code: str,
    error: str,
    duration_ms: int = 0,
    interrupted: bool = False,
) -> dict[str, Any]:
    """A command that ended before its pipeline could report (worker died, internal error)."""
    return final_response(
        command,
        preview_url=preview_url,
        summary="",
        files_changed=[],
        commit=None,
        steps=[],
        duration_ms=duration_ms,
        build_success=False,
        deploy_success=False,
        push_success=False,
        interrupted=interrupted,
        error=error,
        error_code=error_code,
    )


def invalid_message_response(
    command_id: str, session_id: str | None, reason: str, *, message_shape: str = SHAPE_COMMAND
) -> dict[str, Any]:
    """`command_id` from read_ids (a task-shape body's `messageId`); `message_shape` from read_message_shape."""
    body = {
        "type": "response",
        "commandId": command_id,
        "sessionId": session_id,
        "chatThreadId": None,
        "timestamp": now_iso(),
        "success": False,
        "summary": "",
        "filesChanged": [],
        "previewUrl": None,
        "branch": None,
        "commit": None,
        "buildSuccess": False,
        "deploySuccess": False,
        "pushSuccess": False,
        "interrupted": False,
        "error": reason,
        "errorCode": ErrorCode.INVALID_MESSAGE,
        "durationMs": 0,
        "steps": [],
    }
    return _with_anchor_names(body, message_shape)


def progress_event(command: Command, step: str, status: str, **fields: Any) -> dict[str, Any]:
    """started/finished/failed per step; `tool` (with `tool` and `target`) for each agent tool use."""
    return {
        "type": "progress",
        "commandId": command.command_id,
        "sessionId": command.session_id,
        "step": step,
        "status": status,
        **fields,
        "timestamp": now_iso(),
    }
