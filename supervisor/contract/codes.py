"""Names the response contract fixes (CONTRACT §2): the steps in their order and the error codes."""

from __future__ import annotations

from enum import StrEnum

STEP_NAMES = ("workspace", "agent", "commit", "build", "deploy", "push")


class ErrorCode(StrEnum):
    """A response's `errorCode`; a str, so it goes into JSON as its name."""

    INVALID_MESSAGE = "INVALID_MESSAGE"
    INVALID_ATTACHMENT = "INVALID_ATTACHMENT"  # an attachment refused before the agent ran (steps/attachments)
    AGENT_FAILED = "AGENT_FAILED"
    AGENT_TIMEOUT = "AGENT_TIMEOUT"
    BUILD_FAILED = "BUILD_FAILED"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    PUSH_FAILED = "PUSH_FAILED"
    GIT_CONFLICT = "GIT_CONFLICT"
    INTERRUPTED = "INTERRUPTED"
    NOTHING_TO_UNDO = "NOTHING_TO_UNDO"  # /undo on a thread with no command left to take back
    UNDO_CONFLICT = "UNDO_CONFLICT"  # /undo whose revert conflicts with what came after it
    WORKER_DIED = "WORKER_DIED"
    INTERNAL = "INTERNAL"
