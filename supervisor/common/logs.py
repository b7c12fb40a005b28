"""One log line per event: JSON in production, text in a terminal.

Every line carries commandId, sessionId and step, taken from a context variable so code deep in a
step does not have to pass them around.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

CONTEXT_FIELDS = ("commandId", "sessionId", "step")
_context: contextvars.ContextVar[dict[str, str | None]] = contextvars.ContextVar("log_context", default={})  # noqa: B039
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Within the block, every log line carries these fields (commandId, sessionId, step...)."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str | None]:
    """The fields in force here, to carry into another thread (threads start with an empty context)."""
    return dict(_context.get())


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def __init__(self, process_name: str):
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        context = _context.get()
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "process": self.process_name,
            "pid": record.process,
            "event": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            line[name] = context.get(name)
        line.update(_extras(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self, process_name: str):
        super().__init__()
        self.process_name = process_name

    def format(self, record: logging.LogRecord) -> str:
        context = _context.get()
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        where = "/".join(str(context[n]) for n in ("commandId", "step") if context.get(n))
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        text = f"{stamp} {self.process_name:<10} {record.levelname.lower():<7} [{where}] {record.getMessage()}"
        if extras:
            text += f"  {extras}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(log_format: str, process_name: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter(process_name) if log_format == "json" else TextFormatter(process_name)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter (every boto request) would drown the events that matter.
    for noisy in ("botocore", "boto3", "urllib3", "sh", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
