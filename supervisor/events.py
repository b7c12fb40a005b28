"""What the supervisor's threads tell its loop. Threads only put these on the loop's queue; the loop
alone acts on them (changes a Run, talks to SQS, reaps)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from supervisor.queues import Received
from supervisor.run import Run
from supervisor.worker_process import WorkerProcess


@dataclass(frozen=True)
class MessageReceived:
    """The poller took a message off the input queue (already held: hidden from other consumers)."""

    message: Received
    # Set by the loop once it has decided what becomes of the message (a poller may wait for that).
    decided: threading.Event = field(default_factory=threading.Event, compare=False)


@dataclass(frozen=True)
class WorkerReported:
    """A step or progress event a worker wrote to its pipe."""

    run: Run
    worker_pid: int
    event: dict[str, Any]


@dataclass(frozen=True)
class WorkerExited:
    """A worker's process ended; its result, if it wrote one, is on `worker.result`."""

    run: Run
    worker: WorkerProcess
    code: int


@dataclass(frozen=True)
class TreeEnded:
    """Nothing of an interrupted worker's process tree is left; `signals` says what it took."""

    run: Run
    signals: dict[str, int]


@dataclass(frozen=True)
class LeasesLost:
    """Workspace leases this container could not renew in time, or that another took over
    (supervisor/sharing/claims.py): nothing of ours may work in those workspaces any more."""

    workspaces: tuple[str, ...]


@dataclass(frozen=True)
class Decided:
    """A decision made off the loop (whether a command runs here: supervisor/sharing/claims.py),
    applied by calling `apply` on the loop's thread."""

    apply: Callable[[], None]


@dataclass(frozen=True)
class TaskGone:
    """The state machine that sent this message no longer waits for it (its task timed out, or the
    execution ended): supervisor/task_tokens.py found out with a heartbeat."""

    message: Received


LoopEvent = MessageReceived | WorkerReported | WorkerExited | TreeEnded | LeasesLost | Decided | TaskGone
