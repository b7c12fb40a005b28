"""What becomes of a received message, before the router sees it: rejected as invalid, handed back
while stopping, dropped as answered already, kept as the newer receipt of a run we hold, relayed to
another container (LEASE_TABLE), or a new Run for the router. Decisions only; the loop calls it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from supervisor.contract.command import InvalidMessage, parse_command
from supervisor.contract.config import Config
from supervisor.delivery import Delivery
from supervisor.queues import Received
from supervisor.responder import Responder, log_context_of
from supervisor.routing import Router
from supervisor.run import Run
from supervisor.sharing.single import SingleContainer
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
    ):
        self.config, self.responder, self.delivery, self.router = config, responder, delivery, router
        self.sharing, self.shutdown = sharing, shutdown

    def take(self, message: Received, then: Callable[[Run], None]) -> None:
        """Deal with the message, or hand its new run to `then` (the loop's arrival)."""
        try:
            run = self._take(message)
            if run is not None:
                then(run)
        except Exception as error:  # whatever went wrong, the message ends dead-lettered, not held for ever
            log.exception("could not handle a message; dead-lettering it", extra={"messageId": message.message_id})
            self.responder.reject(message, InvalidMessage(f"the supervisor could not handle it: {error}"[:500]))

    def _take(self, message: Received) -> Run | None:
        try:
            command = parse_command(message.body, self.config.repo_url)
        except InvalidMessage as error:
            self.responder.reject(message, error)
            return None
        if self.shutdown.stopping:
            self.delivery.give_back(message)
            return None
        try:
            if self.responder.drop_if_answered(command.command_id, message):
                return None
        except OSError as error:  # the records cannot be read now (a network volume): neither run nor reject
            log.warning("could not read the answered records; trying again later: %s", error)
            self.delivery.retry_later(message, UNREADABLE_RECORDS_RETRY_SECONDS)
            return None
        held = self.router.holding(message.message_id)
        if held is not None:  # delivered again while we still work on it: keep the newest receipt
            held.message = message
            return None
        twin = self.router.holding_command(command.command_id)
        if twin is not None:  # another copy of a command we work on: the command id decides, not SQS's
            with log_context_of(twin):  # message id; answered through the message we hold, this one goes
                log.warning("a second copy of the command arrived; deleted", extra={"messageId": message.message_id})
            self.delivery.delete(message)
            return None
        run = Run(command, message)
        here = run.workspace in self.router.running or run.workspace in self.router.waiting
        admitted = self.sharing.admit(run.workspace_name, message, here=here, free=self.router.has_free_slot())
        if admitted is None:
            return None  # forwarded to its owner, or back on the queue for an idle container
        run.fence, run.warnings = admitted.fence, admitted.warnings
        with log_context_of(run):
            log.info("command received", extra={"branch": command.branch, "workspace": run.workspace_name})
        return run
