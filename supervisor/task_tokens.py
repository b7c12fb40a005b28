"""Step Functions task tokens: a command sent by a state machine with `sqs:sendMessage.waitForTaskToken`
carries `taskToken`, and the execution waits for one callback with it.

- While we hold the message (waiting, running, forwarded and received by another container), a
  heartbeat every TASK_HEARTBEAT_SECONDS (`TaskHeartbeats`): the execution's HeartbeatSeconds never
  runs out on a command at work.
- With the final response, one callback (`callback_for`): `SendTaskSuccess` with the response as the
  output, or `SendTaskFailure` with our error code (`PREEMPTED` for an interrupted command, as the
  anchor's state machines expect) and the error text as the cause. The delivery thread makes it,
  after the output queue's send and before the delete (supervisor/delivery.py).
- TaskTimedOut, TaskDoesNotExist and InvalidToken mean the orchestrator has moved on: a callback counts
  as made, a heartbeat tells the loop to drop the command (`on_gone`); logged once, never retried.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from supervisor.contract.config import Config
from supervisor.queues import Received

log = logging.getLogger("supervisor.task_tokens")
GONE = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")
MAX_OUTPUT_BYTES = 256 * 1024  # Step Functions' limit on a task's output
MAX_CAUSE_CHARS = 32_768
MAX_ERROR_CHARS = 256
MAX_TOKEN_CHARS = 8192
PREEMPTED = "PREEMPTED"
CALLS = BotoConfig(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 5})
TICK_SECONDS = 1.0  # how often the heartbeat thread looks for tokens due


def task_token_of(body: str) -> str | None:
    """The message's `taskToken`, whatever its shape; None when it has none (or none we could use)."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    token = value.get("taskToken") if isinstance(value, dict) else None
    if isinstance(token, str) and 0 < len(token) <= MAX_TOKEN_CHARS and token.isprintable():
        return token
    return None


@dataclass(frozen=True)
class Callback:
    """One call to make with a token: success with `output`, or failure with `error` and `cause`."""

    token: str
    output: str | None = None
    error: str | None = None
    cause: str | None = None


def callback_for(token: str, response: dict[str, Any]) -> Callback:
    if response.get("success"):
        return Callback(token, output=task_output(response))
    error = PREEMPTED if response.get("interrupted") else str(response.get("errorCode") or "INTERNAL")
    return Callback(token, error=error[:MAX_ERROR_CHARS], cause=str(response.get("error") or "")[:MAX_CAUSE_CHARS])


def task_output(response: dict[str, Any]) -> str:
    """The response as the task's output, within Step Functions' 256 KB: when too large, the steps'
    details go first, then the summary is cut and the files listed are cut, and `truncated` says so."""
    text = json.dumps(response, ensure_ascii=False)
    if len(text.encode()) <= MAX_OUTPUT_BYTES:
        return text
    cut = {
        **response,
        "truncated": True,
        "steps": [{"step": s.get("step"), "status": s.get("status")} for s in response.get("steps", [])],
    }
    for files in (500, 50, 0):
        cut["summary"] = str(response.get("summary", ""))[:4000]
        cut["filesChanged"] = list(response.get("filesChanged", []))[:files]
        text = json.dumps(cut, ensure_ascii=False)
        if len(text.encode()) <= MAX_OUTPUT_BYTES:
            return text
    return json.dumps({key: cut.get(key) for key in ("type", "commandId", "messageId", "success", "truncated")})


def is_gone(error: Exception) -> bool:
    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    return code in GONE


class StepFunctions:
    """The Step Functions calls we make; the client is made on first use (most deployments never do)."""

    def __init__(self, config: Config | None, client: Any | None = None):
        self.config = config
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                config = self.config
                self._client = boto3.client(
                    "stepfunctions",
                    region_name=config.aws_region if config else None,
                    endpoint_url=config.aws_endpoint_url if config else None,
                    config=BotoConfig(
                        connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 5}
                    ),
                )
            return self._client

    def call(self, callback: Callback) -> str | None:
        """Make the callback; None when done (or the orchestrator has moved on), else the error to retry on."""
        try:
            if callback.output is not None:
                self.client.send_task_success(taskToken=callback.token, output=callback.output)
            else:
                self.client.send_task_failure(
                    taskToken=callback.token, error=callback.error or "", cause=callback.cause or ""
                )
        except Exception as error:
            if is_gone(error):
                log.warning("the orchestrator has moved on; no callback made: %s", error)
                return None
            return f"{type(error).__name__}: {error}"
        return None

    def heartbeat(self, token: str) -> bool:
        """One heartbeat; False when the orchestrator has moved on (raises on a passing fault)."""
        try:
            self.client.send_task_heartbeat(taskToken=token)
        except Exception as error:
            if is_gone(error):
                return False
            raise
        return True


class TaskHeartbeats:
    """A heartbeat every `every` seconds for each held message that carries a task token, the first at
    once; a token the orchestrator no longer knows is reported once (`on_gone`) and then left alone."""

    def __init__(
        self,
        held: Callable[[], list[Received]],
        stepfunctions: StepFunctions,
        every: float,
        on_gone: Callable[[Received], None],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.held, self.stepfunctions, self.every, self.on_gone, self.clock = held, stepfunctions, every, on_gone, clock
        self._tokens: dict[str, str | None] = {}  # message id → its token (None: it has none)
        self._last: dict[str, float] = {}  # message id → when its last heartbeat went out
        self._gone: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat_forever, name="task-heartbeats", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def beat(self) -> None:
        """One round: heartbeats for the tokens due."""
        held = self.held()
        ids = {m.message_id for m in held}
        for forgotten in set(self._tokens) - ids:  # answered, given back or deleted since
            self._tokens.pop(forgotten, None)
            self._last.pop(forgotten, None)
            self._gone.discard(forgotten)
        now = self.clock()
        for message in held:
            if message.message_id not in self._tokens:
                self._tokens[message.message_id] = task_token_of(message.body)
            token = self._tokens[message.message_id]
            if token is None or message.message_id in self._gone:
                continue
            if now - self._last.get(message.message_id, float("-inf")) < self.every:
                continue
            try:
                alive = self.stepfunctions.heartbeat(token)
            except Exception as error:  # a passing fault: the next round tries again
                log.warning("task heartbeat failed: %s", error, extra={"messageId": message.message_id})
                continue
            self._last[message.message_id] = now
            if not alive:
                self._gone.add(message.message_id)
                log.warning(
                    "the orchestrator has moved on (task timed out or gone)", extra={"messageId": message.message_id}
                )
                self.on_gone(message)

    def _beat_forever(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.beat()
            except Exception:
                log.exception("task heartbeat round failed")
