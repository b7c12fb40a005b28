"""The status file: what the supervisor is doing, for `bin/status` and `bin/healthcheck`.

Written atomically (temp file + rename) by the main loop about once a second, so its `heartbeat`
says the loop is alive; the scripts only read it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from supervisor.common.files import private_folder, write_atomic

log = logging.getLogger("supervisor.status")
HEALTHY_WITHIN_SECONDS = 30.0


def status_path(workspace_path: str | os.PathLike[str]) -> Path:
    # Client ids cannot start with ".", so this never collides with a checkout. One file per host: on a
    # shared volume (EFS) every container's healthcheck must read its own supervisor's heartbeat.
    return Path(workspace_path, ".supervisor", f"status-{socket.gethostname()}.json")


def write_status(path: Path, status: dict[str, Any]) -> None:
    private_folder(path.parent)  # the supervisor's records: not for the jobs' uids to read
    write_atomic(path, json.dumps({**status, "heartbeat": time.time()}, indent=1))


def read_status(path: Path) -> dict[str, Any]:
    """The last status written; raises OSError or ValueError when there is none to read."""
    value = json.loads(path.read_text())
    if not isinstance(value, dict):
        raise ValueError(f"{path} does not hold a status object")
    return value


def status_report(supervisor: Any) -> dict[str, Any]:
    """What `bin/status` shows: the supervisor's workers and the commands waiting for one."""
    workers = [
        {
            "workspace": "/".join(run.workspace),
            "commandId": run.command.command_id,
            "sessionId": run.command.session_id,
            "branch": run.command.branch,
            "phase": run.phase,
            "step": run.step,
            "workerPid": run.worker.pid if run.worker else None,
            "elapsedSeconds": round(run.elapsed(), 1),
        }
        for run in supervisor.router.running.values()
    ]
    waiting = [
        {"workspace": "/".join(run.workspace), "commandId": run.command.command_id}
        for run in supervisor.router.waiting.values()
    ]
    return {
        "pid": os.getpid(),
        "stopping": supervisor.shutdown.stopping,
        "maxWorkers": supervisor.config.max_workers,
        "handled": supervisor.responder.handled,
        "workers": workers,
        "waiting": waiting,
        # With LEASE_TABLE: this container's id in the lease table, and its lease table.
        "owner": getattr(supervisor.sharing, "owner", None),
        "leaseTable": supervisor.config.lease_table,
        # What contains the jobs here: each layer "on" or why it is off (steps/job/runner.py).
        "containment": getattr(supervisor, "containment_layers", {}),
    }


def publish_status(path: Path, supervisor: Any) -> None:
    """Rewrite the status file; a failure is logged, never raised into the loop."""
    try:
        write_status(path, status_report(supervisor))
    except OSError as error:
        log.warning("could not write the status file: %s", error)
