"""What becomes of a received message, before the router sees it: rejected as invalid, handed back
while stopping, dropped as answered already, kept as the newer receipt of a run we hold, relayed to
another container (LEASE_TABLE), or a new Run for the router. Decisions only; the loop calls it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

from supervisor.contract.command import InvalidMessage, parse_command
from supervisor.contract.config import Config
from supervisor.contract.interrupts import Interrupt, parse_interrupt
from supervisor.contract.remotes import repository_inside_workspaces
from supervisor.delivery import Delivery
from supervisor.queues import Received
from supervisor.responder import Responder, log_context_of
from supervisor.routing import Router
from supervisor.run import Run
from supervisor.sharing.single import Admit, SingleContainer
from supervisor.shutdown import Shutdown

log = logging.getLogger("supervisor")
UNREADABLE_RECORDS_RETRY_SECONDS = 10


class Intake:
    def __init__(
        self,
        config: Config,
        responder: Responder,
        delivery: Delivery,
        router: Router,
        sharing: SingleContainer,
        shutdown: Shutdown,
        arrive: Callable[[Run], None],
        on_interrupt: Callable[[Interrupt, Received], None] = lambda _interrupt, _message: None,
    ):
        self.config, self.responder, self.delivery, self.router = config, responder, delivery, router
        self.sharing, self.shutdown, self.arrive = sharing, shutdown, arrive  # `arrive`: the loop's, for a new run
        self.on_interrupt = on_interrupt  # an interrupt message (supervisor/stop_requests.py)
        self.admitting: dict[str, Run] = {}  # by command id: runs whose admission is being decided (claims)

    def take(self, message: Received) -> None:
        """Deal with the message, or hand its new run to `arrive` (once admitted)."""
        with self._or_reject(message):
            self._take(message)

    @contextmanager
    def _or_reject(self, message: Received) -> Iterator[None]:
        try:
            yield
        except Exception as error:  # whatever went wrong, the message ends dead-lettered, not held for ever
            log.exception("could not handle a message; dead-lettering it", extra={"messageId": message.message_id})
            self.responder.reject(message, InvalidMessage(f"the supervisor could not handle it: {error}"[:500]))

    def _take(self, message: Received) -> None:
        try:
            interrupt = parse_interrupt(message.body, self.config.repo_url)
        except InvalidMessage as error:
            self.responder.reject(message, error)
            return
        if interrupt is not None:
            self.on_interrupt(interrupt, message)
            return
        try:
            command = parse_command(message.body, self.config.repo_url)
            refused = repository_inside_workspaces(command.repo_url, self.config.workspace_path)
            if refused:
                raise InvalidMessage(refused, command.command_id)
        except InvalidMessage as error:
            self.responder.reject(message, error)
            return
        if self.shutdown.stopping:
            self.delivery.give_back(message)
            return
        try:
            if self.responder.drop_if_answered(command.command_id, message):
                return
        except OSError as error:  # the records cannot be read now (a network volume): neither run nor reject
            log.warning("could not read the answered records; trying again later: %s", error)
            self.delivery.retry_later(message, UNREADABLE_RECORDS_RETRY_SECONDS)
            return
        held = self.router.holding(message.message_id)
        if held is not None:  # delivered again while we still work on it: keep the newest receipt
            held.message = message
            return
        twin = self.router.holding_command(command.command_id) or self.admitting.get(command.command_id)
        if twin is not None:  # another copy of a command we work on: the command id decides, not SQS's
            with log_context_of(twin):  # message id; answered through the message we hold, this one goes
                log.warning("a second copy of the command arrived; deleted", extra={"messageId": message.message_id})
            self.delivery.delete(message)
            return
        run = Run(command, message)
        here = run.workspace in self.router.running or run.workspace in self.router.waiting
        here = here or any(pending.workspace == run.workspace for pending in self.admitting.values())
        # Before this run counts: a burst of commands for other workspaces, each admitted before the one
        # ahead of it is decided, must not take more leases than we have slots.
        free = self.router.has_free_slot(pending.workspace for pending in self.admitting.values())
        self.admitting[command.command_id] = run
        self.sharing.admit(
            run.workspace_name,
            message,
            here=here,
            free=free,
            then=partial(self._admitted, run),
            command_id=command.command_id,
        )

    def _admitted(self, run: Run, admitted: Admit | None) -> None:
        """The sharing's decision on a run (at once alone on the queue; from the admission thread else)."""
        self.admitting.pop(run.command.command_id, None)
        if admitted is None:
            return  # forwarded to its owner, or back on the queue for an idle container
        with self._or_reject(run.message):
            if self.shutdown.stopping:
                self.delivery.give_back(run.message)
                return
            run.fence, run.warnings = admitted.fence, admitted.warnings
            if admitted.newest is not None:  # the previous owner's newest command: an older one is superseded
                self.router.learn_started(run.workspace, admitted.newest)
            with log_context_of(run):
                log.info("command received", extra={"branch": run.command.branch, "workspace": run.workspace_name})
            self.arrive(run)
