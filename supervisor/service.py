"""The supervisor loop: receive, validate, run a worker, respond, delete.

This first version runs one command at a time.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from supervisor.config import Config
from supervisor.leases import Leases
from supervisor.logs import log_context
from supervisor.messages import Command, InvalidMessage, parse_command, read_ids
from supervisor.queues import Queues, Received
from supervisor.responses import failure_response, invalid_message_response, progress_event
from supervisor.worker_process import WorkerProcess

log = logging.getLogger("supervisor")


class Supervisor:
    def __init__(self, config: Config, queues: Queues | None = None):
        self.config = config
        self.queues = queues or Queues(config)
        self.stopping = threading.Event()
        self.leases = Leases(self.queues)
        self.handled = 0

    # Invalid messages ----------------------------------------------------------------------------

    def reject(self, message: Received, error: InvalidMessage) -> None:
        command_id, session_id = read_ids(message.body)
        with log_context(commandId=command_id, sessionId=session_id):
            log.warning("invalid message: %s", error.reason, extra={"messageId": message.message_id})
            # With no DLQ_URL the queue's redrive policy dead-letters it; answer only the first delivery.
            if command_id and (self.config.dlq_url or message.receive_count <= 1):
                self.queues.respond(invalid_message_response(command_id, session_id, error.reason))
            self.leases.release(message)
            if self.queues.dead_letter(message, error.reason):
                self.queues.delete(message)

    # Valid commands -------------------------------------------------------------------------------

    def _on_worker_event(self, command: Command) -> Any:
        def handle(event: dict[str, Any]) -> None:
            if event["event"] == "step" and self.config.progress_events:
                self.queues.respond(progress_event(command, event["step"], event["status"]))

        return handle

    def run_command(self, message: Received, command: Command) -> dict[str, Any]:
        started = time.monotonic()
        with log_context(commandId=command.command_id, sessionId=command.session_id):
            log.info("command received", extra={"branch": command.branch, "messageId": message.message_id})
            worker = WorkerProcess(command, on_event=self._on_worker_event(command))
            code = worker.wait()
            response = worker.result
            if response is None:
                log.error("worker ended without a result", extra={"exitCode": code})
                response = failure_response(
                    command,
                    preview_url=self.config.preview_url_for(command.client_id),
                    error_code="WORKER_DIED",
                    error=f"the worker ended without a result (exit code {code})",
                    duration_ms=int((time.monotonic() - started) * 1000),
                )
            self.queues.respond(response)
            self.leases.release(message)
            self.queues.delete(message)
            log.info("command finished", extra={"success": response["success"], "errorCode": response["errorCode"]})
            return response

    def handle(self, message: Received) -> None:
        try:
            command = parse_command(message.body, self.config.repo_url)
        except InvalidMessage as error:
            self.reject(message, error)
            return
        self.run_command(message, command)
        self.handled += 1

    def _poll(self, inbox: queue.Queue[Received]) -> None:
        """Long-poll continuously on a thread of its own, so shutdown never waits on a receive."""
        while not self.stopping.is_set():
            try:
                for message in self.queues.receive(max_messages=1):
                    self.leases.hold(message)
                    inbox.put(message)
            except Exception:
                log.exception("receive failed; retrying")
                self.stopping.wait(2)

    def _return_unstarted(self, inbox: queue.Queue[Received]) -> int:
        returned = 0
        while True:
            try:
                message = inbox.get_nowait()
            except queue.Empty:
                return returned
            self.leases.release(message)
            self.queues.extend(message, 0)  # visible again at once for the next consumer
            returned += 1

    def run(self) -> None:
        log.info("supervisor started", extra={"queue": self.config.input_queue_url})
        inbox: queue.Queue[Received] = queue.Queue()
        self.leases.start()
        poller = threading.Thread(target=self._poll, args=(inbox,), name="poller", daemon=True)
        poller.start()
        while not self.stopping.is_set():
            try:
                message = inbox.get(timeout=0.5)
            except queue.Empty:
                continue
            self.handle(message)
        # A receive in flight may still deliver; wait for it within the grace, then hand everything back.
        poller.join(timeout=self.config.shutdown_grace_seconds)
        returned = self._return_unstarted(inbox)
        self.leases.stop()
        log.info("supervisor stopped", extra={"handled": self.handled, "returned": returned})
