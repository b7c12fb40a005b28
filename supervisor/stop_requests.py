"""Requests from outside a run to stop work in a workspace, decided for the loop: a lost workspace lease
(another container works there now), a task the orchestrator no longer waits for, and an interrupt
message (issue 19). Each ends what has not started (handed back, or answered as superseded) and
interrupts what runs, through the loop's own `interrupt` (one ladder per tree)."""

from __future__ import annotations

from collections.abc import Callable

from supervisor.contract.interrupts import Interrupt
from supervisor.delivery import Delivery
from supervisor.queues import Received
from supervisor.responder import Responder
from supervisor.routing import Router
from supervisor.run import Run
from supervisor.sharing.single import SingleContainer

Interrupter = Callable[..., None]  # the loop's `_interrupt(run, reason, *, return_message=False)`


class StopRequests:
    def __init__(
        self,
        router: Router,
        responder: Responder,
        delivery: Delivery,
        sharing: SingleContainer,
        interrupt: Interrupter,
    ):
        self.router, self.responder, self.delivery, self.sharing = router, responder, delivery, sharing
        self.interrupt = interrupt

    def leases_lost(self, workspaces: tuple[str, ...]) -> None:
        """Another container may work there now: stop ours, write nothing more, hand the messages back."""
        for run in self.router.take_waiting(workspaces):
            self.delivery.give_back(run.message)
        for run in self.router.running.values():
            if run.workspace_name not in workspaces:
                continue
            run.lease_lost = True
            if run.phase in ("running", "finishing"):
                self.interrupt(run, "this container lost the workspace's lease", return_message=True)

    def task_gone(self, message: Received) -> None:
        """Nobody waits for this command any more: it is not started, or stopped (its answer still goes
        to the output queue; its callback finds the token gone and counts as made)."""
        run = self.router.holding(message.message_id)
        if run is None:
            return  # answered meanwhile, or not ours yet (an admission): its callback settles it
        self._stop(run, "the orchestrator stopped waiting for this command (its task timed out)")

    def interrupt_message(self, interrupt: Interrupt, message: Received) -> None:
        """Interrupt the matching workspaces' commands here; for a workspace with no work here, the
        message goes to the container that holds it (several containers), else it has done its job."""
        reason = f"interrupted: {interrupt.reason}"
        matching = [
            run
            for run in [*self.router.waiting.values(), *self.router.running.values()]
            if interrupt.matches(run.workspace)
        ]
        for run in matching:
            self._stop(run, reason)
        if matching or interrupt.workspace_name is None:
            self.delivery.delete(message)
        else:
            self.sharing.relay(interrupt.workspace_name, message)

    def _stop(self, run: Run, reason: str) -> None:
        if run in self.router.take_waiting((run.workspace_name,)):
            self.responder.superseded(run, reason)
        elif run.phase == "running":
            self.interrupt(run, reason)
