"""The worker process: runs one command's pipeline and reports to the supervisor over a pipe.

Started as `python -m steps.worker` with the command as JSON on stdin. It never touches SQS.
"""

from __future__ import annotations

import logging
import sys

from steps.base import StepContext, workspace_path
from steps.git import Git
from steps.pipeline import run_pipeline
from supervisor.config import load_config_or_exit
from supervisor.events import EventWriter
from supervisor.exit_codes import WorkerExit
from supervisor.logs import log_context, setup_logging
from supervisor.messages import Command

log = logging.getLogger("steps.worker")


def main() -> int:
    config = load_config_or_exit(require_input_queue=False)
    setup_logging(config.log_format, "worker")
    try:
        command = Command.from_json(sys.stdin.read())
    except (ValueError, TypeError) as error:
        log.error("could not read the command given to the worker: %s", error)
        return WorkerExit.BAD_INPUT
    events = EventWriter.from_environment()
    checkout = workspace_path(config, command)
    ctx = StepContext(config=config, command=command, checkout=checkout, git=Git(checkout, config))
    with log_context(commandId=command.command_id, sessionId=command.session_id):
        log.info("worker started", extra={"branch": command.branch, "workspace": str(checkout)})
        response = run_pipeline(ctx, events.step)
        events.result(response)
        log.info("worker finished", extra={"success": response["success"], "errorCode": response["errorCode"]})
    return WorkerExit.OK


if __name__ == "__main__":
    sys.exit(main())
