"""`python -m supervisor`: consume INPUT_QUEUE_URL until SIGTERM (warm stop) or a second signal (cold stop)."""

from __future__ import annotations

import logging
import signal
import sys

from steps.deploy import unusable_strategy
from steps.job.runner import find_containment
from supervisor.common.logs import setup_logging
from supervisor.common.proctree import become_subreaper, hide_environment
from supervisor.contract.config import load_config_or_exit
from supervisor.contract.exit_codes import SupervisorExit
from supervisor.loop import Supervisor
from supervisor.sharing.claims import SharingUnavailable

log = logging.getLogger("supervisor")


def main() -> int:
    config = load_config_or_exit()
    setup_logging(config.log_format, "supervisor")
    # Orphaned descendants of a worker are re-parented to us, so an interrupt still finds them.
    if not become_subreaper():
        log.warning("could not become a child subreaper; orphaned processes may escape interrupts")
    hide_environment()
    containment = find_containment(config.sandbox)
    layers = containment.layers()
    log.info("containment: %s", "; ".join(f"{name} {state}" for name, state in layers.items()), extra=layers)
    if config.sandbox == "required" and not containment.sandbox:
        print(
            f"SANDBOX=required, but the kernel sandbox cannot run here: {containment.sandbox_off_reason}",
            file=sys.stderr,
        )
        return SupervisorExit.CONFIG
    unusable = unusable_strategy(config)
    if unusable:
        print(unusable, file=sys.stderr)
        return SupervisorExit.CONFIG
    supervisor = Supervisor(config)
    supervisor.containment_layers = layers
    # Handlers only record the signal; the loop acts on it (also as PID 1, which ignores unhandled signals).
    signal.signal(signal.SIGTERM, supervisor.on_signal)
    signal.signal(signal.SIGINT, supervisor.on_signal)
    try:
        return supervisor.run()
    except SharingUnavailable as error:
        log.error("cannot share the queue: %s", error)
        return SupervisorExit.CONFIG
    except Exception:
        log.exception("supervisor loop crashed")
        return SupervisorExit.CRASHED


if __name__ == "__main__":
    sys.exit(main())
