"""What every part of a message is checked against: the one error a bad message raises, and the
characters no field may hold."""

from __future__ import annotations

import re

MAX_ID_LENGTH = 128  # of any id: commandId, messageId, thread, session
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A lone surrogate (JSON's "\ud800") is no text: it cannot be written as UTF-8 to git, a process or SQS.
LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


class InvalidMessage(ValueError):
    """The message breaks a rule of CONTRACT §1. command_id is set when it could be read."""

    def __init__(self, reason: str, command_id: str | None = None, session_id: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.command_id = command_id
        self.session_id = session_id
