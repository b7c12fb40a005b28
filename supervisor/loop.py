"""The supervisor's event loop: it alone makes decisions and changes runs.

Threads only wait, post typed events (supervisor/events.py) or carry out what the loop decided: the
pollers, the pool's waiters and interrupters, the lease keepers, the delivery thread (SQS calls in
batches). `intake.Intake` decides what becomes of a message (with `sharing` when containers share the
queue), `routing.Router` what runs where, `shutdown.Shutdown` keeps the stop deadlines."""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from supervisor.contract.config import Config
from supervisor.contract.exit_codes import SupervisorExit, WorkerExit
from supervisor.deadlines import due_interrupts
from supervisor.delivery import Delivery
from supervisor.events import (
    Decided,
    LeasesLost,
    LoopEvent,
    MessageReceived,
    TaskGone,
    TreeEnded,
    WorkerExited,
    WorkerReported,
)
from supervisor.intake import Intake
from supervisor.poller import hand_back_unread
from supervisor.pool import WorkerPool
from supervisor.progress import Progress
from supervisor.queues import Queues, Received
from supervisor.responder import Responder, log_context_of
from supervisor.routing import Router
from supervisor.run import Run
from supervisor.sharing import REQUEUE_SECONDS, sharing_for
from supervisor.shutdown import Shutdown
from supervisor.status import publish_status, status_path
from supervisor.stop_requests import StopRequests
from supervisor.task_tokens import TaskHeartbeats
from supervisor.visibility import VisibilityKeeper
from supervisor.warm_builds import WarmBuilds

log = logging.getLogger("supervisor")
TICK_SECONDS = 0.5
FINISH_SECONDS_BEYOND_PUSH = 120
PoolFactory = Callable[[Callable[[LoopEvent], None]], WorkerPool]


class Supervisor:
    def __init__(
        self,
        config: Config,
        queues: Queues | None = None,
        *,
        pool: PoolFactory = WorkerPool,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.config = config
        self.queues = queues or Queues(config)
        self.visibility = VisibilityKeeper(self.queues, visibility_seconds=config.visibility_timeout_seconds)
        self.delivery = Delivery(self.queues, self.visibility)
        self.heartbeats = TaskHeartbeats(
            self.visibility.held,
            self.delivery.stepfunctions,
            config.task_heartbeat_seconds,
            on_gone=lambda message: self.events.put(TaskGone(message)),
        )
        self.responder = Responder(config, self.delivery)
        self.progress = Progress(config, self.delivery, clock)
        self.events: queue.Queue[LoopEvent] = queue.Queue()
        self.router = Router(config.max_workers)
        self.shutdown = Shutdown.of(config)
        self.warm_builds = WarmBuilds(config)  # before the pool starts workers: they find it in their environment
        self.pool = pool(self.events.put)
        self.pool.services = self.warm_builds.pids
        self.sharing = sharing_for(config)(config, self.queues, self.delivery, self.visibility, self.events.put)
        self.stop_requests = StopRequests(self.router, self.responder, self.delivery, self.sharing, self._interrupt)
        self.intake = Intake(
            config,
            self.responder,
            self.delivery,
            self.router,
            self.sharing,
            self.shutdown,
            arrive=self._arrive,
            on_interrupt=self.stop_requests.interrupt_message,
        )
        self.clock = clock
        self._signals: list[int] = []  # appended by signal handlers, read by the loop (no locks there)
        self.poller_stop = threading.Event()
        self._next_tick = 0.0
        self.shutdown.last_activity = clock()
        self._status_file = status_path(config.workspace_path)
        self._finish_limit = config.push_retry_seconds + FINISH_SECONDS_BEYOND_PUSH  # repair, WIP commit, push

    # Entry points ---------------------------------------------------------------------------------

    def on_signal(self, signum: int, _frame: object = None) -> None:
        self._signals.append(signum)

    def run(self) -> int:
        log.info("supervisor started", extra={"queue": self.config.input_queue_url, "workers": self.config.max_workers})
        self.sharing.start()  # first: a lease table we cannot use stops us before anything runs
        self.responder.answered.prune()
        self.visibility.start()
        self.heartbeats.start()
        self.delivery.start()
        pollers = self.sharing.pollers(self.poller_stop)
        for poller in pollers:
            poller.start()
        while not self.finished():
            self.step(TICK_SECONDS)
        return self._leave(*pollers)

    def step(self, timeout: float) -> None:
        """One turn of the loop: signals, at most one event, the periodic checks."""
        self._take_signals()
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            event = None
        try:
            if event is not None:
                self.dispatch(event)
            self.sharing.publish(self.router)  # every turn: a freed slot wakes a paused poller at once
            self._tick()
        except Exception:  # one event's failure (SQS down for a moment) must not end every worker
            log.exception("supervisor event failed; carrying on", extra={"kind": type(event).__name__})
        finally:
            if isinstance(event, MessageReceived):  # published: a poller waiting on it sees our free slots
                event.decided.set()

    def finished(self) -> bool:
        if not self.shutdown.stopping or self.router.running:
            return False  # admissions still being decided are waited for, up to the stop's deadline
        return not self.intake.admitting or self.shutdown.time_left(self.clock()) <= 0

    def dispatch(self, event: LoopEvent) -> None:
        match event:
            case MessageReceived(message):
                self._on_message(message)
            case WorkerReported(run, worker_pid, body):
                self._on_report(run, worker_pid, body)
            case WorkerExited(run, worker, code):
                self._on_exit(run, worker, code)
            case TreeEnded(run, signals):
                self._on_tree_ended(run, signals)
            case LeasesLost(workspaces):
                self.stop_requests.leases_lost(workspaces)
            case Decided(apply):
                apply()
            case TaskGone(message):
                self.stop_requests.task_gone(message)

    # Events ---------------------------------------------------------------------------------------

    def _on_message(self, message: Received) -> None:
        self.shutdown.last_activity = self.clock()
        self.intake.take(message)

    def _arrive(self, run: Run) -> None:
        arrival = self.router.arrive(run)
        if arrival.superseded is run:  # sent before a command of its workspace that waits, runs or ran here
            reason = f"superseded by a newer command ({arrival.newer}), sent after it but received before it"
            self.responder.superseded(run, reason)
        elif arrival.superseded is not None:
            reason = f"superseded by a newer command ({arrival.newer}) before it started"
            self.responder.superseded(arrival.superseded, reason)
        if arrival.interrupt is not None:
            self._interrupt(arrival.interrupt, f"a newer command ({arrival.newer}) arrived for this workspace")
        self._start_ready()

    def _on_report(self, run: Run, worker_pid: int, event: dict[str, Any]) -> None:
        if run.worker is None or run.worker.pid != worker_pid:
            return  # from a worker already replaced
        if event["event"] == "step":
            run.on_step_event(event)
        self.progress.report(run, event)

    def _on_exit(self, run: Run, worker: Any, code: int) -> None:
        self.pool.forget(worker)
        if worker is not run.worker or run.phase == "interrupting":
            return  # a replaced worker, or an interrupt that reports through TreeEnded
        self.pool.end_leftovers(run)
        with log_context_of(run):
            if code == WorkerExit.LEASE_LOST or run.lease_lost:  # the workspace's new owner runs it
                self.delivery.requeue(run.message, REQUEUE_SECONDS)  # waiting, not failing: a fresh receive count
            elif run.phase == "finishing":
                self.responder.finish_interrupted(run, worker.result, code)
            elif worker.result is not None:
                self.responder.final(run, worker.result)
            else:
                self.responder.worker_died(run, code)
        self.router.finished(run)
        self._start_ready()

    def _on_tree_ended(self, run: Run, signals: dict[str, int]) -> None:
        took_ms = int((self.clock() - (run.interrupt_started or self.clock())) * 1000)
        with log_context_of(run):
            log.info("worker tree ended", extra={"signals": signals, "tookMs": took_ms, "reason": run.interrupt_reason})
            if self.shutdown.forced or run.finish_overdue or run.lease_lost:
                if run.finish_overdue and not run.lease_lost:  # answered with its edits as far as committed
                    self.responder.finish_interrupted(run, None, -signal.SIGKILL)
                else:  # a lost lease: the new owner's worker finds the edits (shared disk) and runs it
                    self.delivery.give_back(run.message)
                self.router.finished(run)
                self._start_ready()
                return
            run.move_to("finishing")
            run.finishing_since = self.clock()
            extra = {"steps": run.steps_when_interrupted(), "reason": run.interrupt_reason}
            self.pool.start(run, mode="interrupted", extra=extra)

    # Workers --------------------------------------------------------------------------------------

    def _start_ready(self) -> None:
        if self.shutdown.stopping:
            return
        for run in self.router.ready():
            run.move_to("running")
            run.started = self.clock()
            self.pool.start(run, mode="run")

    def _interrupt(self, run: Run, reason: str, *, return_message: bool = False, grace: float | None = None) -> None:
        """SIGINT → grace → SIGTERM → SIGKILL to the whole tree (the pool's thread); TreeEnded follows."""
        run.move_to("interrupting")
        run.interrupt_reason, run.return_message, run.interrupt_started = reason, return_message, self.clock()
        if grace is None:
            grace = 0.0 if self.shutdown.forced else self.config.interrupt_grace_seconds
        processes = self.pool.interrupt(run, grace=grace)
        with log_context_of(run):
            log.info("interrupting", extra={"reason": reason, "processes": processes, "step": run.step})

    # Periodic work and shutdown -------------------------------------------------------------------

    def _tick(self) -> None:
        now = self.clock()
        if now < self._next_tick:
            return
        self._next_tick = now + TICK_SECONDS
        runs = list(self.router.running.values())
        self.warm_builds.check(now)
        self.pool.track(runs)
        for run in runs:
            if run.phase == "running":
                self.progress.flush(run)
        for due in due_interrupts(now, runs, self.shutdown, self._finish_limit):
            due.run.finish_overdue = due.run.finish_overdue or due.overdue
            self._interrupt(due.run, due.reason, return_message=due.return_message, grace=due.grace)
        if self.shutdown.idle_due(now, busy=bool(self.router.running or self.router.waiting)):
            log.info("idle for IDLE_EXIT_SECONDS; stopping", extra={"idleSeconds": self.config.idle_exit_seconds})
            self._begin_stop("idle")
        publish_status(self._status_file, self)

    def _take_signals(self) -> None:
        while self._signals:
            name = signal.Signals(self._signals.pop(0)).name
            if not self._begin_stop(name) and self.shutdown.force():
                log.warning("second stop signal: ending all work now", extra={"signal": name})
                for run in list(self.router.running.values()):
                    if run.phase != "interrupting" and run.worker is not None:
                        self._interrupt(run, "the supervisor was stopped at once", return_message=True)

    def _begin_stop(self, reason: str) -> bool:
        """A warm stop (SIGTERM, or idle long enough); False when one is already under way."""
        if not self.shutdown.begin(self.clock()):
            return False
        log.info("stopping: finishing running work", extra={"signal": reason})
        self.poller_stop.set()
        self.sharing.stop_receiving()
        for run in self.router.take_waiting():
            self.delivery.give_back(run.message)
        return True

    def _leave(self, *pollers: threading.Thread) -> int:
        for poller in pollers:
            poller.join(timeout=max(0.0, self.shutdown.time_left(self.clock()) - 0.5))
        hand_back_unread(self.events, self.delivery)  # what a receive still in flight delivered goes back
        for run in self.intake.admitting.values():  # decisions that did not come in time
            self.delivery.give_back(run.message)
        self.visibility.stop()
        self.heartbeats.stop()
        self.pool.close()
        self.warm_builds.close()
        self.delivery.close(timeout=max(1.0, self.shutdown.time_left(self.clock())))
        self.sharing.close(timeout=max(1.0, self.shutdown.time_left(self.clock())))
        publish_status(self._status_file, self)
        log.info("supervisor stopped", extra={"handled": self.responder.handled, "forced": self.shutdown.forced})
        return SupervisorExit.FORCED if self.shutdown.forced else SupervisorExit.OK
