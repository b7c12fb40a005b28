"""The supervisor's processes: starting workers (spares ahead of need), waiting for them, and ending
their trees. Its threads only wait on something and post what happened to the loop.

The one escalation ladder for a worker's tree is `proctree.end_tree`, run here: SIGINT to every process
(snapshot taken before any signal), INTERRUPT_GRACE_SECONDS, SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from supervisor.common import proctree
from supervisor.contract.exit_codes import WorkerExit
from supervisor.events import LoopEvent, TreeEnded, WorkerExited, WorkerReported
from supervisor.run import Run
from supervisor.worker_process import SpareWorkers, WorkerProcess

log = logging.getLogger("supervisor.pool")
# A process re-parented to us that no run's tree holds is ended once it is this old and was there at the
# previous track too: our own short-lived children (`git check-ref-format` while parsing) are long gone.
STRAY_MIN_AGE_SECONDS = 2.0


@dataclass
class NotStarted:
    """The worker a run gets when none could be started: no process, no result."""

    pid: int = -1
    result: None = None


class WorkerPool:
    def __init__(self, post: Callable[[LoopEvent], None]):
        self.post = post
        self.spares = SpareWorkers()
        # Workers whose exit status their own waiter collects: the loop's reaping leaves them alone.
        # Changed by the loop only (start, and forget once it has handled the exit).
        self.unwaited: set[int] = set()
        # Our own long-lived children that are not workers (the warm build manager): never leftovers.
        self.services: Callable[[], set[int]] = set
        self._strays_seen: dict[int, float] = {}  # adopted processes at the last track: pid → creation time
        self._strays_ending: set[int] = set()  # being ended on a thread of their own

    def start(self, run: Run, *, mode: str, extra: dict[str, Any] | None = None) -> None:
        """Start the run's worker. When no process can be had, its exit is posted at once with
        NOT_STARTED: the loop settles it as a worker that died (retried, then one answer), never a run
        that holds its slot and workspace with no worker."""
        try:
            worker = self.spares.take()
        except OSError as error:
            log.error("could not start a worker: %s", error, extra={"commandId": run.command.command_id})
            run.worker = NotStarted()  # type: ignore[assignment]
            self.post(WorkerExited(run, run.worker, WorkerExit.NOT_STARTED))
            return
        pid = worker.pid

        def report(event: dict[str, Any]) -> None:  # on the pipe reader's thread: only post
            if event.get("event") in ("step", "progress"):
                self.post(WorkerReported(run, pid, event))

        fence = {"fence": run.fence, "warnings": list(run.warnings)} if run.fence else {}
        worker.assign(run.command, report, mode=mode, extra={**fence, **(extra or {})})
        run.worker = worker
        run.tree = {pid: proctree.creation_time(pid)}
        self.unwaited.add(pid)
        threading.Thread(target=self._wait_for, args=(run, worker), name=f"wait-{pid}", daemon=True).start()
        self.spares.replenish()  # after the job is handed over: its worker does not wait for these forks

    def _wait_for(self, run: Run, worker: WorkerProcess) -> None:
        self.post(WorkerExited(run, worker, worker.wait()))

    def forget(self, worker: WorkerProcess) -> None:
        self.unwaited.discard(worker.pid)

    def interrupt(self, run: Run, *, grace: float) -> int:
        """End the run's whole tree on a thread (TreeEnded follows); returns how many processes it has."""
        assert run.worker is not None
        if isinstance(run.worker, NotStarted):  # no process to end; its exit is already posted
            self.post(TreeEnded(run, {}))
            return 0
        # Before any signal (orphans move away); kept on the run, so the stray sweep leaves it to this ending.
        tree = run.tree = {**run.tree, **proctree.snapshot(run.worker.pid)}

        def end() -> None:
            self.post(TreeEnded(run, proctree.end_tree(tree, grace=grace, first_signal=signal.SIGINT)))

        threading.Thread(target=end, name=f"interrupt-{run.worker.pid}", daemon=True).start()
        return len(tree)

    def end_leftovers(self, run: Run) -> list[int]:
        """After a worker exited: end what is left of its tree and any orphan re-parented to us (workers
        are subreapers themselves, so an orphan of ours can only come from a worker that died)."""
        keep = self.unwaited | self.spares.pids() | self.services()
        leftovers = {**run.tree, **proctree.adopted_orphans(keep=keep)}
        survivors = proctree.alive(leftovers)
        if survivors:
            log.warning("worker left processes behind; ending them", extra={"pids": survivors})
            proctree.end_tree(leftovers, grace=0.5, first_signal=signal.SIGTERM, term_grace=0.5)
        return survivors

    def track(self, runs: list[Run]) -> None:
        """Refresh each live tree's snapshot (children started since), collect inherited zombies, and end
        strays: processes re-parented to us that no run holds. `end_leftovers` ends a dead worker's
        orphans, but one whose parent was still exiting during its scan reaches us only afterwards."""
        for run in runs:
            if run.worker is not None and not isinstance(run.worker, NotStarted) and run.phase != "interrupting":
                run.tree.update(proctree.snapshot(run.worker.pid))
        children = psutil.Process().children()  # one scan of the process table for both
        proctree.reap_orphans(keep=self.unwaited | self.services(), children=children)
        held = {pid for run in runs for pid in run.tree}
        self._end_strays(self.unwaited | self.spares.pids() | self.services() | held, children)

    def _end_strays(self, keep: set[int], children: list[psutil.Process]) -> None:
        now, adopted = time.time(), proctree.adopted_orphans(keep=keep | self._strays_ending, children=children)
        strays = {
            pid: created
            for pid, created in adopted.items()
            if self._strays_seen.get(pid) == created and now - created >= STRAY_MIN_AGE_SECONDS
        }
        self._strays_seen = adopted
        if not strays:
            return
        log.warning("processes left by a worker that is gone; ending them", extra={"pids": sorted(strays)})
        self._strays_ending |= set(strays)

        def end() -> None:
            try:
                proctree.end_tree(strays, grace=0.5, first_signal=signal.SIGTERM, term_grace=0.5)
            finally:
                self._strays_ending -= set(strays)

        threading.Thread(target=end, name="end-strays", daemon=True).start()

    def close(self) -> None:
        self.spares.close()
