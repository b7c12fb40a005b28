"""The supervisor: one event loop owns every decision; threads only wait on something and report it.

Threads: the poller (long-polls SQS and posts each message), one waiter per worker (posts its exit),
one per interrupt (ends a process tree and posts that it is gone), the lease keeper (extends
visibility). The loop routes commands by workspace, starts workers up to MAX_WORKERS, interrupts a
busy workspace's worker when a newer command for it arrives, and answers every command exactly once.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from supervisor.common import proctree
from supervisor.common.logs import log_context
from supervisor.contract.codes import ErrorCode
from supervisor.contract.command import InvalidMessage, parse_command, read_ids
from supervisor.contract.config import Config
from supervisor.contract.exit_codes import SupervisorExit
from supervisor.contract.responses import failure_response, invalid_message_response, progress_event
from supervisor.leases import Leases
from supervisor.queues import Queues, Received
from supervisor.run import Run
from supervisor.status import status_path, write_status
from supervisor.worker_process import SpareWorkers, WorkerProcess

log = logging.getLogger("supervisor")
TICK_SECONDS = 0.5
# Time kept back from SHUTDOWN_GRACE_SECONDS for committing interrupted work and leaving.
SHUTDOWN_RESERVE_SECONDS = 3.0
WORKER_DIED_RETRY_SECONDS = 10
RESPONSE_RETRY_SECONDS = 30  # a message whose response could not be sent comes back this much later


class Supervisor:
    def __init__(self, config: Config, queues: Queues | None = None):
        self.config = config
        self.queues = queues or Queues(config)
        self.leases = Leases(self.queues, lease_seconds=config.visibility_timeout_seconds)
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.runs: dict[tuple[str, str, str], Run] = {}  # at most one per workspace
        self.waiting: dict[tuple[str, str, str], Run] = {}  # the newest unstarted command per workspace
        self.stopping = threading.Event()
        self.stop_started: float | None = None
        self.forced = False
        self.handled = 0
        self._signals: list[int] = []  # appended by signal handlers, read by the loop (no locks there)
        self._status_file = status_path(config.workspace_path)
        self._next_tick = 0.0
        self._unwaited: set[int] = set()  # worker pids whose exit status their waiter thread collects
        self.spares = SpareWorkers()

    # Entry points ---------------------------------------------------------------------------------

    def on_signal(self, signum: int, _frame: object = None) -> None:
        self._signals.append(signum)

    def run(self) -> int:
        log.info("supervisor started", extra={"queue": self.config.input_queue_url, "workers": self.config.max_workers})
        self.leases.start()
        poller = threading.Thread(target=self._poll, name="poller", daemon=True)
        poller.start()
        while not self._finished():
            self._take_signals()
            try:
                event = self.events.get(timeout=TICK_SECONDS)
            except queue.Empty:
                event = None
            try:
                if event is not None:
                    self._dispatch(event)
                self._tick()
            except Exception:  # one event's failure (SQS down for a moment) must not end every worker
                log.exception("supervisor event failed; carrying on", extra={"kind": event[0] if event else "tick"})
        return self._leave(poller)

    # The loop's events ----------------------------------------------------------------------------

    def _dispatch(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "message":
            self._on_message(event[1])
        elif kind == "worker-exited":
            self._on_worker_exit(*event[1:])
        elif kind == "tree-ended":
            self._on_tree_ended(*event[1:])
        elif kind == "worker-event":
            self._on_worker_event(*event[1:])

    def _on_message(self, message: Received) -> None:
        try:
            command = parse_command(message.body, self.config.repo_url)
        except InvalidMessage as error:
            self._reject(message, error)
            return
        if self.stopping.is_set():
            self._give_back(message)
            return
        held = self._holding(message.message_id)
        if held is not None:  # delivered again while we still work on it: keep the newest receipt
            held.message = message
            return
        run = Run(command, message)
        with log_context(commandId=command.command_id, sessionId=command.session_id):
            log.info("command received", extra={"branch": command.branch, "workspace": "/".join(run.workspace)})
        older = self.waiting.pop(run.workspace, None)
        if older is not None:
            self._answer_unstarted(older, f"superseded by a newer command ({command.command_id}) before it started")
        self.waiting[run.workspace] = run
        active = self.runs.get(run.workspace)
        if active is not None and active.phase == "running":
            self._interrupt(active, f"a newer command ({command.command_id}) arrived for this workspace")
        self._start_ready()

    def _on_worker_exit(self, run: Run, worker: WorkerProcess, code: int) -> None:
        if worker is not run.worker or run.phase == "interrupting":
            return  # a replaced worker, or an interrupt that reports through "tree-ended"
        leftovers = {**run.tree, **proctree.adopted_orphans(keep=self._keep_unreaped() | self.spares.pids())}
        survivors = proctree.alive(leftovers)
        if survivors:  # a crashed worker's descendants, re-parented to us as the subreaper
            log.warning("worker left processes behind; ending them", extra={"pids": survivors})
            proctree.end_tree(
                leftovers, grace=0.5, first_signal=signal.SIGTERM, term_grace=0.5, reap_except=self._keep_unreaped
            )
        with log_context(commandId=run.command.command_id, sessionId=run.command.session_id):
            if run.phase == "finishing":
                self._finish_interrupted(run, worker, code)
            elif worker.result is not None:
                self._complete(run, worker.result)
            else:
                self._worker_died(run, code)
        self.runs.pop(run.workspace, None)
        self._start_ready()

    def _on_tree_ended(self, run: Run, sent: dict[str, int]) -> None:
        took_ms = int((time.monotonic() - (run.interrupt_started or time.monotonic())) * 1000)
        with log_context(commandId=run.command.command_id, sessionId=run.command.session_id):
            log.info("worker tree ended", extra={"signals": sent, "tookMs": took_ms, "reason": run.interrupt_reason})
            if self.forced:
                self._give_back(run.message)
                self.runs.pop(run.workspace, None)
                return
            run.phase = "finishing"
            extra = {"steps": run.steps_when_interrupted(), "reason": run.interrupt_reason}
            self._start_worker(run, mode="interrupted", extra=extra)

    # Outcomes -------------------------------------------------------------------------------------

    def _complete(self, run: Run, response: dict[str, Any]) -> None:
        if not self._send(response):
            # Deleted only after its response is sent: it comes back and the command is finished again.
            log.error("response not sent; message kept", extra={"retryInSeconds": RESPONSE_RETRY_SECONDS})
            self.leases.release(run.message)
            self._set_visibility(run.message, RESPONSE_RETRY_SECONDS)
            return
        self._delete(run.message)
        self.handled += 1
        log.info("command finished", extra={"success": response["success"], "errorCode": response["errorCode"]})

    def _worker_died(self, run: Run, code: int) -> None:
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        log.error("worker died without a result", extra={"exit": how})
        self._send(self._failure(run, ErrorCode.WORKER_DIED, f"the worker ended unexpectedly ({how})"))
        # Left for redelivery: the queue's redrive policy dead-letters a message that keeps killing workers.
        self.leases.release(run.message)
        self._set_visibility(run.message, WORKER_DIED_RETRY_SECONDS * max(1, run.message.receive_count))

    def _finish_interrupted(self, run: Run, worker: WorkerProcess, code: int) -> None:
        reason = f"{run.interrupt_reason}; the interrupted edits were not committed (exit {code})"
        response = worker.result or self._failure(run, ErrorCode.INTERRUPTED, reason)
        response["interrupted"] = True
        if run.return_message:  # shutdown: the command is unfinished; another consumer runs it again
            log.info("interrupted by shutdown; message returned to the queue", extra={"commit": response["commit"]})
            self._give_back(run.message)
            return
        self._complete(run, response)

    def _answer_unstarted(self, run: Run, reason: str) -> None:
        with log_context(commandId=run.command.command_id, sessionId=run.command.session_id):
            response = self._failure(run, ErrorCode.INTERRUPTED, reason)
            response["interrupted"] = True
            self._complete(run, response)

    def _reject(self, message: Received, error: InvalidMessage) -> None:
        command_id, session_id = read_ids(message.body)
        with log_context(commandId=command_id, sessionId=session_id):
            log.warning("invalid message: %s", error.reason, extra={"messageId": message.message_id})
            # With no DLQ_URL the queue's redrive policy dead-letters it; answer only the first delivery.
            self.leases.release(message)
            answer = command_id and (self.config.dlq_url or message.receive_count <= 1)
            if answer and not self._send(invalid_message_response(command_id, session_id, error.reason)):
                return  # left in the queue: answered and dead-lettered on a later delivery
            if self.queues.dead_letter(message, error.reason):
                self.queues.delete(message)

    # Workers --------------------------------------------------------------------------------------

    def _start_ready(self) -> None:
        while not self.stopping.is_set() and len(self.runs) < self.config.max_workers:
            key = next((k for k in self.waiting if k not in self.runs), None)
            if key is None:
                return
            run = self.waiting.pop(key)
            run.started = time.monotonic()
            self.runs[key] = run
            self._start_worker(run, mode="run")

    def _start_worker(self, run: Run, *, mode: str, extra: dict[str, Any] | None = None) -> None:
        worker = self.spares.take()
        worker.assign(run.command, self._events_of(run, worker.pid), mode=mode, extra=extra)
        run.worker = worker
        run.tree = {worker.pid: proctree.creation_time(worker.pid)}
        self._unwaited.add(worker.pid)
        threading.Thread(target=self._wait_for, args=(run, worker), name=f"wait-{worker.pid}", daemon=True).start()

    def _wait_for(self, run: Run, worker: WorkerProcess) -> None:
        code = worker.wait()
        self._unwaited.discard(worker.pid)
        self.events.put(("worker-exited", run, worker, code))

    def _keep_unreaped(self) -> set[int]:
        return set(self._unwaited)

    def _events_of(self, run: Run, worker_pid: int) -> Callable[[dict[str, Any]], None]:
        """The pipe reader's handler: it only queues the event; the loop acts on it (a slow SQS send
        must never hold up the reader, or the worker's result)."""

        def handle(event: dict[str, Any]) -> None:
            if event.get("event") in ("step", "progress"):
                self.events.put(("worker-event", run, worker_pid, event))

        return handle

    def _on_worker_event(self, run: Run, worker_pid: int, event: dict[str, Any]) -> None:
        if run.worker is None or run.worker.pid != worker_pid:
            return  # from a worker already replaced
        if event["event"] == "step":
            run.on_step_event(event)
        if not self.config.progress_events or run.phase != "running":
            return
        if event["event"] == "step":
            self._send(progress_event(run.command, event["step"], event["status"]))
        else:
            fields = {k: v for k, v in event.items() if k not in ("event", "step", "status")}
            run.queue_progress(progress_event(run.command, str(event.get("step")), str(event.get("status")), **fields))
            self._send_due_progress(run)

    def _send_due_progress(self, run: Run) -> None:
        due = run.due_progress(time.monotonic())
        if due is not None:
            self._send(due)

    def _interrupt(self, run: Run, reason: str, *, return_message: bool = False) -> None:
        """SIGINT → grace → SIGTERM → SIGKILL to the whole tree, on a thread; "tree-ended" follows."""
        assert run.worker is not None
        run.phase, run.interrupt_reason, run.return_message = "interrupting", reason, return_message
        run.interrupt_started = time.monotonic()
        tree = {**run.tree, **proctree.snapshot(run.worker.pid)}  # before any signal: orphans move away
        with log_context(commandId=run.command.command_id, sessionId=run.command.session_id):
            log.info("interrupting", extra={"reason": reason, "processes": len(tree), "step": run.step})
        grace = 0.0 if self.forced else self.config.interrupt_grace_seconds

        def end() -> None:
            sent = proctree.end_tree(tree, grace=grace, first_signal=signal.SIGINT, reap_except=self._keep_unreaped)
            self.events.put(("tree-ended", run, sent))

        threading.Thread(target=end, name=f"interrupt-{run.worker.pid}", daemon=True).start()

    # Periodic work and shutdown -------------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        if now < self._next_tick:
            return
        self._next_tick = now + TICK_SECONDS
        for run in self.runs.values():
            if run.worker is not None and run.phase != "interrupting":
                run.tree.update(proctree.snapshot(run.worker.pid))
            if run.phase == "running":
                self._send_due_progress(run)
        proctree.reap_orphans(keep=self._keep_unreaped())
        if self.stop_started is not None:
            self._shutdown_step(now - self.stop_started)
        self._write_status()

    def _take_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if self.stop_started is None:
                log.info("stopping: finishing running work", extra={"signal": signal.Signals(signum).name})
                self.stop_started = time.monotonic()
                self.stopping.set()
                for run in list(self.waiting.values()):
                    self._give_back(run.message)
                self.waiting.clear()
            elif not self.forced:
                log.warning("second stop signal: ending all work now", extra={"signal": signal.Signals(signum).name})
                self.forced = True
                for run in self.runs.values():
                    if run.phase == "interrupting":
                        continue  # its tree is already being ended
                    if run.worker is not None:
                        self._interrupt(run, "the supervisor was stopped at once", return_message=True)

    def _shutdown_step(self, waited: float) -> None:
        """Running work may finish until the reserve for interrupting it is reached; then it is interrupted."""
        allowed = self.config.shutdown_grace_seconds - self.config.interrupt_grace_seconds - SHUTDOWN_RESERVE_SECONDS
        if waited < max(0.0, allowed):
            return
        for run in self.runs.values():
            if run.phase == "running":
                self._interrupt(run, "the supervisor is shutting down", return_message=True)

    def _finished(self) -> bool:
        return self.stopping.is_set() and not self.runs

    def _leave(self, poller: threading.Thread) -> int:
        # A receive still in flight may deliver messages; the poller hands those back itself.
        remaining = self.config.shutdown_grace_seconds - (time.monotonic() - (self.stop_started or 0)) - 0.5
        poller.join(timeout=max(0.0, remaining))
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            if event[0] == "message":
                self._give_back(event[1])
        self.leases.stop()
        self.spares.close()
        self._write_status()
        log.info("supervisor stopped", extra={"handled": self.handled, "forced": self.forced})
        return SupervisorExit.FORCED if self.forced else SupervisorExit.OK

    # SQS and bookkeeping --------------------------------------------------------------------------

    def _poll(self) -> None:
        while not self.stopping.is_set():
            try:
                messages = self.queues.receive(max_messages=10)
            except Exception:
                log.exception("receive failed; retrying")
                self.stopping.wait(2)
                continue
            for message in messages:
                if self.stopping.is_set():
                    self._give_back(message)
                    continue
                self.leases.hold(message)
                self.events.put(("message", message))

    def _holding(self, message_id: str) -> Run | None:
        for run in [*self.runs.values(), *self.waiting.values()]:
            if run.message.message_id == message_id:
                return run
        return None

    def _failure(self, run: Run, code: str, error: str) -> dict[str, Any]:
        preview = self.config.preview_url_for(run.command.client_id)
        return failure_response(run.command, preview_url=preview, error_code=code, error=error)

    def _send(self, body: dict[str, Any]) -> bool:
        """Send to the output queue (boto3 retries first); False when it could not be sent."""
        try:
            self.queues.respond(body)
        except Exception as error:
            log.error("could not send to the output queue: %s", error, extra={"type": body.get("type")})
            return False
        return True

    def _delete(self, message: Received) -> None:
        self.leases.release(message)
        self.queues.delete(message)

    def _give_back(self, message: Received) -> None:
        self.leases.release(message)
        self._set_visibility(message, 0)

    def _set_visibility(self, message: Received, seconds: int) -> None:
        try:
            self.queues.extend(message, seconds)
        except Exception as error:  # it comes back when its current visibility runs out
            log.warning("could not change visibility: %s", error, extra={"messageId": message.message_id})

    def _write_status(self) -> None:
        workers = [
            {
                "workspace": "/".join(run.workspace),
                "commandId": run.command.command_id,
                "sessionId": run.command.session_id,
                "branch": run.command.branch,
                "phase": run.phase,
                "step": run.step,
                "workerPid": run.worker.pid if run.worker else None,
                "elapsedSeconds": round(run.elapsed(), 1),
            }
            for run in self.runs.values()
        ]
        waiting = [
            {"workspace": "/".join(run.workspace), "commandId": run.command.command_id} for run in self.waiting.values()
        ]
        status = {
            "pid": os.getpid(),
            "stopping": self.stopping.is_set(),
            "maxWorkers": self.config.max_workers,
            "handled": self.handled,
            "workers": workers,
            "waiting": waiting,
        }
        try:
            write_status(self._status_file, status)
        except OSError as error:
            log.warning("could not write the status file: %s", error)
