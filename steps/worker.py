"""The worker process: runs one command in its workspace and reports to the supervisor over a pipe.

Started as `python -m steps.worker` with a job as JSON on stdin: {"mode": "run", "command": {...}} runs
the pipeline; {"mode": "interrupted", "command": {...}, "steps": [...]} finishes a command whose tree the
supervisor has just ended (WIP commit and push). It never touches SQS.
"""

from __future__ import annotations

import os
import signal

if __name__ == "__main__":
    # Until main() installs the real handlers, after the imports below (0.3 s): a stop means leave at
    # once and quietly. No step has started, so there is nothing to end, and no traceback for the log.
    signal.signal(signal.SIGINT, lambda signum, _frame: os._exit(128 + signum))

import json
import logging
import sys
from types import FrameType
from typing import Any

from steps.base import StepContext, workspace_path
from steps.fence import Fence, LeaseLost, lease_client
from steps.git.ledger import Ledger
from steps.git.lock import WorkspaceBusy, workspace_lock
from steps.git.repo import Git
from steps.interrupted import finish_interrupted
from steps.job.identity import JOB_UMASK
from steps.job.runner import find_containment
from steps.pipeline import run_pipeline
from steps.processes import shell
from supervisor.common.logs import log_context, setup_logging
from supervisor.common.proctree import become_subreaper, die_with_parent, end_descendants, hide_environment
from supervisor.contract.codes import ErrorCode
from supervisor.contract.command import Command
from supervisor.contract.config import load_config_or_exit
from supervisor.contract.exit_codes import WorkerExit
from supervisor.contract.pipe import PARENT_PID_VARIABLE, EventWriter
from supervisor.contract.responses import failure_response

log = logging.getLogger("steps.worker")
BACKSTOP_ROOM_SECONDS = 10


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: unwind like Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Signals:
    """Who ends the tree when we are stopped, and no second signal cutting that short.

    With our supervisor alive, its ladder (supervisor/pool.py) signals every process of our tree: we
    just leave. When it died (PR_SET_PDEATHSIG sent us SIGTERM), nobody else will: our command's tree is
    ended on the way out (steps/processes/shell.py), and later signals are ignored until we are gone.

    `Stopped` is raised from the handler, so at whatever bytecode the main thread was at. Raised inside
    logging's critical sections it leaves their lock held for ever and every other thread that logs
    hangs (seen: the agent's output reader, then the worker joining it, holding the workspace lock, its
    supervisor killed mid-ladder). So the signal waits until the main thread holds no logging lock,
    and a backstop (SIGALRM) ends our tree and exits if leaving still takes too long.
    """

    RETRY_SECONDS = 0.02

    def __init__(self, supervisor_pid: int, backstop_seconds: float):
        self.supervisor_pid = supervisor_pid
        self.backstop_seconds = backstop_seconds
        self.stopping = False
        self.pending: int | None = None

    def install(self) -> None:
        signal.signal(signal.SIGINT, self.on_signal)
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGALRM, self.on_alarm)

    def supervisor_alive(self) -> bool:
        """Our parent still runs. PDEATHSIG comes when the *thread* that started us exits: killed -9, the
        supervisor's threads die one by one, and the signal may reach us while our parent's other threads
        live on (getppid unchanged); its main thread, a zombie by then, tells."""
        return self.supervisor_pid != 0 and os.getppid() == self.supervisor_pid and not _exiting(self.supervisor_pid)

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping:
            return  # already on the way out
        if _inside_logging():
            self.pending = signum
            signal.setitimer(signal.ITIMER_REAL, self.RETRY_SECONDS)
            return
        self._stop(signum)

    def raise_pending(self) -> None:
        """Raise a stop held back by `on_signal` now (shell.run, when the stop killed its command too)."""
        if not self.stopping and self.pending is not None and not _inside_logging():
            self._stop(self.pending)

    def _stop(self, signum: int) -> None:
        self.stopping = True
        signal.setitimer(signal.ITIMER_REAL, self.backstop_seconds)  # replaces a pending retry
        raise Stopped(signum)

    def on_alarm(self, _signum: int, frame: FrameType | None) -> None:
        if not self.stopping and self.pending is not None:
            self.on_signal(self.pending, frame)
        elif self.stopping:  # leaving took too long: end what is left of our tree, then go (no logging)
            os.write(2, f"worker {os.getpid()}: still here {self.backstop_seconds:g}s after a stop; ending\n".encode())
            end_descendants(grace=1.0)
            os._exit(WorkerExit.TERMINATED)

    def ends_tree(self, error: BaseException) -> bool:
        return not (isinstance(error, Stopped) and self.supervisor_alive())


def _exiting(pid: int) -> bool:
    """Whether the process's main thread has ended (a zombie, or gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _inside_logging() -> bool:
    """Whether this (the main) thread is inside one of logging's locked sections right now."""
    locks = [getattr(logging, "_lock", None)]
    locks += [h.lock for h in logging.getLogger().handlers if h.lock is not None]
    return any(lock is not None and getattr(lock, "_is_owned", lambda: False)() for lock in locks)


def read_job(text: str) -> tuple[str, Command, dict[str, Any]]:
    job = json.loads(text)
    mode = job.get("mode", "run")
    if mode not in ("run", "interrupted"):
        raise ValueError(f"unknown mode {mode!r}")
    return mode, Command(**job["command"]), job


def main() -> int:
    config = load_config_or_exit(require_input_queue=False)
    setup_logging(config.log_format, "worker")
    # Our descendants stay findable even when their parent dies; if the supervisor dies, so do we.
    become_subreaper()
    hide_environment()
    supervisor_pid = int(os.environ.get(PARENT_PID_VARIABLE, "0") or 0)
    die_with_parent(signal.SIGTERM, expected_parent=supervisor_pid)
    # Time to leave after a stop: our own tree's ladder (twice the grace, orphaned) and some room.
    signals = _Signals(supervisor_pid, backstop_seconds=2 * config.interrupt_grace_seconds + BACKSTOP_ROOM_SECONDS)
    signals.install()
    shell.ends_tree_on_interrupt = signals.ends_tree
    shell.raise_pending_stop = signals.raise_pending
    shell.interrupt_grace = config.interrupt_grace_seconds
    try:
        client = lease_client(config) if config.lease_table else None  # made while idle, off a command's time
        containment = find_containment(config.sandbox)  # probed while idle too
        if containment.identity:
            os.umask(JOB_UMASK)  # what our git writes into a checkout, the job's group may edit
        text = sys.stdin.read()  # a spare worker waits here, imports done, until it is given a job
    except Stopped:
        return WorkerExit.OK  # a spare stopped before it had a job: nothing to report
    if not text.strip():
        return WorkerExit.OK  # dismissed without a job
    try:
        mode, command, job = read_job(text)
    except (ValueError, TypeError, KeyError) as error:
        log.error("could not read the job given to the worker: %s", error)
        return WorkerExit.BAD_INPUT
    events = EventWriter.from_environment()
    checkout = workspace_path(config, command)
    ctx = StepContext(config=config, command=command, checkout=checkout, git=Git(checkout, config))
    ctx.on_progress = events.progress
    ctx.fence = Fence.from_job(job, config, client)
    ctx.containment = containment
    ctx.warnings += [str(w) for w in job.get("warnings", [])]  # from the supervisor (a workspace moved)
    with log_context(commandId=command.command_id, sessionId=command.session_id):
        try:
            with workspace_lock(checkout):
                ctx.check_lease("touching the checkout")  # we may have waited for the lock
                log.info("worker started", extra={"mode": mode, "branch": command.branch})
                if mode == "interrupted":
                    response = finish_interrupted(ctx, job.get("steps", []), job.get("reason", "interrupted"))
                else:
                    response = run_pipeline(ctx, events.step)
                if ctx.fence is not None and checkout.is_dir():
                    ctx.fence.record_pending(Ledger(checkout).pending_pushes())
        except LeaseLost as lost:
            log.error("stopping without a response: %s", lost)
            return WorkerExit.LEASE_LOST
        except Stopped as stop:
            log.warning("worker stopped by %s", stop)
            if not signals.supervisor_alive():  # no ladder of its will reach what our command started
                _end_orphaned_job(ctx, config.interrupt_grace_seconds)
            return WorkerExit.INTERRUPTED if stop.signum == signal.SIGINT else WorkerExit.TERMINATED
        except WorkspaceBusy as busy:
            preview = config.preview_url_for(command)
            response = failure_response(command, preview_url=preview, error_code=ErrorCode.INTERNAL, error=str(busy))
        events.result(response)
        log.info(
            "worker finished",
            extra={
                "success": response["success"],
                "errorCode": response["errorCode"],
                "commandMs": int(shell.command_seconds * 1000),
                "costUsd": (response.get("agent") or {}).get("costUsd"),
            },
        )
    return WorkerExit.OK


def _end_orphaned_job(ctx: StepContext, grace: float) -> None:
    """Our supervisor died: end our descendants (we are their subreaper) and every process of the job's
    uid (the agent or a build in a session of its own), so nothing of the command outlives us."""
    ended = end_descendants(grace=grace) + ctx.jobs.end_leftovers()
    if ended:
        log.warning("supervisor gone: ended what the command left running", extra={"processes": ended})


def leave(code: int) -> None:
    """Exit without interpreter teardown (about 80 ms here): everything that matters is flushed."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    leave(main())
