"""How each way a command can end is answered: its final response, a dead worker, an interrupted or
superseded command, an invalid message. Decides the response; `Delivery` carries it out."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from supervisor.answer_records import AnsweredCommands
from supervisor.common.logs import log_context
from supervisor.contract.codes import ErrorCode
from supervisor.contract.command import InvalidMessage, read_ids, read_message_shape
from supervisor.contract.config import Config
from supervisor.contract.exit_codes import WorkerExit
from supervisor.contract.responses import failure_response, invalid_message_response, progress_event
from supervisor.delivery import DELETE, RELEASE, Delivery, dead_letter, visible_in
from supervisor.queues import Received
from supervisor.run import Run
from supervisor.task_tokens import callback_for, task_token_of

log = logging.getLogger("supervisor")
WORKER_DIED_RETRY_SECONDS = 10
# A command that killed this many workers is given up (the redrive policy's maxReceiveCount if set).
DEFAULT_MAX_RECEIVES = 3


def log_context_of(run: Run) -> Any:
    return log_context(commandId=run.command.command_id, sessionId=run.command.session_id)


class Responder:
    def __init__(self, config: Config, delivery: Delivery):
        self.config = config
        self.delivery = delivery
        self.answered = AnsweredCommands(config.workspace_path)
        self.handled = 0  # commands answered and deleted
        self._redrive: int | None = None
        self._redrive_read = False
        self._retry = visible_in(WORKER_DIED_RETRY_SECONDS)  # a final answer that could not be sent

    def max_receives(self) -> tuple[int, bool]:
        """(the delivery after which the message is not tried again, whether SQS's redrive policy
        dead-letters it then); read from the input queue once."""
        if not self._redrive_read:
            try:
                self._redrive = self.delivery.queues.max_receive_count()
                self._redrive_read = True
            except Exception as error:  # asked again next time
                log.warning("could not read the input queue's redrive policy: %s", error)
        return (self._redrive, True) if self._redrive else (DEFAULT_MAX_RECEIVES, False)

    def final(self, run: Run, response: dict[str, Any]) -> None:
        log.info("command finished", extra={"success": response["success"], "errorCode": response["errorCode"]})
        self._send_final(run.message, run.command.command_id, response)

    def _send_final(self, message: Received, command_id: str, response: dict[str, Any], **outcomes: Any) -> None:
        self.answered.intend(command_id, response)
        token = task_token_of(message.body)  # sent by a state machine: it waits for this answer too
        callback = callback_for(token, response) if token else None
        self.delivery.answer(
            message, response, on_sent=partial(self._answered, command_id), callback=callback, **outcomes
        )

    def _answered(self, command_id: str) -> None:
        """Its response is out (the delivery thread): a redelivery is only deleted from now on."""
        self.answered.record(command_id)
        self.handled += 1

    def drop_if_answered(self, command_id: str, message: Received) -> bool:
        """A message whose command was answered already (its response went out, its delete did not):
        deleted, never run or answered again. One whose response was being sent when its supervisor
        died: that same response is sent again, then the message deleted."""
        if self.answered.answered(command_id):
            log.info("already answered; deleting the message delivered again", extra={"commandId": command_id})
            self.delivery.delete(message)
            return True
        response = self.answered.maybe_sent(command_id)
        if response is None:
            return False
        log.warning("its response may have gone out before a crash; sending it again", extra={"commandId": command_id})
        self._send_final(message, command_id, response)
        return True

    def worker_died(self, run: Run, code: int) -> None:
        """One final answer per command: WORKER_DIED only when this was its last try; before that the
        chat hears that it is being retried, and the message comes back for another worker."""
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        if code == WorkerExit.NOT_STARTED:
            how = "no worker process could be started"
        deaths, receives = self.answered.count_death(run.command.command_id), run.message.receive_count
        allowed, redrive = self.max_receives()
        extra = {"exit": how, "workerDeaths": deaths, "receiveCount": receives, "maxReceives": allowed}
        log.error("worker died without a result", extra=extra)
        # Given up when this many workers died on it, or when SQS's redrive policy takes it next time.
        if deaths >= allowed or (redrive and receives >= allowed):
            reason = f"the worker ended unexpectedly ({how}); {deaths} worker(s) died on it in {receives} deliveries"
            # Without DLQ_URL the redrive policy moves it on its next receive; without one, given up.
            then = dead_letter(reason) if self.config.dlq_url else visible_in(0) if redrive else DELETE
            response = self._failure(run, ErrorCode.WORKER_DIED, reason)
            self._send_final(run.message, run.command.command_id, response, then=then, otherwise=self._retry)
            return
        if self.config.progress_events:
            step = run.step or "workspace"
            self.delivery.send(progress_event(run.command, step, "retrying", reason=f"the worker ended ({how})"))
        self.delivery.retry_later(run.message, WORKER_DIED_RETRY_SECONDS * deaths)

    def finish_interrupted(self, run: Run, result: dict[str, Any] | None, code: int) -> None:
        reason = f"{run.interrupt_reason}; the interrupted edits were not committed (exit {code})"
        response = result or self._failure(run, ErrorCode.INTERRUPTED, reason)
        response["interrupted"] = True
        if run.return_message:  # shutdown: the command is unfinished; another consumer runs it again
            log.info("interrupted by shutdown; message returned to the queue", extra={"commit": response["commit"]})
            self.delivery.give_back(run.message)
            return
        self.final(run, response)

    def superseded(self, run: Run, reason: str) -> None:
        """A command that never started because a newer one for its workspace arrived."""
        with log_context_of(run):
            response = self._failure(run, ErrorCode.INTERRUPTED, reason)
            response["interrupted"] = True
            self.final(run, response)

    def reject(self, message: Received, error: InvalidMessage) -> None:
        command_id, session_id = read_ids(message.body)
        with log_context(commandId=command_id, sessionId=session_id):
            log.warning("invalid message: %s", error.reason, extra={"messageId": message.message_id})
            # With no DLQ_URL the queue's redrive policy dead-letters it; answer only the first delivery.
            answer = command_id and (self.config.dlq_url or message.receive_count <= 1)
            if not answer:
                self.delivery.dead_letter(message, error.reason)
                return
            # Not sent: left in the queue, answered and dead-lettered on a later delivery.
            shape = read_message_shape(message.body)  # a task-shape body's answer carries messageId too
            response = invalid_message_response(command_id, session_id, error.reason, message_shape=shape)
            token = task_token_of(message.body)
            callback = callback_for(token, response) if token else None
            self.delivery.answer(
                message, response, then=dead_letter(error.reason), otherwise=RELEASE, callback=callback
            )

    def _failure(self, run: Run, code: ErrorCode, error: str) -> dict[str, Any]:
        preview = self.config.preview_url_for(run.command)
        return failure_response(run.command, preview_url=preview, error_code=code, error=error)
