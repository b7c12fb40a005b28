"""`python -m supervisor`: consume INPUT_QUEUE_URL until SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from supervisor.config import load_config_or_exit
from supervisor.exit_codes import SupervisorExit
from supervisor.logs import setup_logging
from supervisor.proctree import become_subreaper
from supervisor.service import Supervisor

log = logging.getLogger("supervisor")


def main() -> int:
    config = load_config_or_exit()
    setup_logging(config.log_format, "supervisor")
    become_subreaper()
    supervisor = Supervisor(config)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", extra={"signal": signal.Signals(signum).name})
        supervisor.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        supervisor.run()
    except Exception:
        log.exception("supervisor loop crashed")
        return SupervisorExit.CRASHED
    return SupervisorExit.OK


if __name__ == "__main__":
    sys.exit(main())
