"""Processes left working in a checkout by a worker that is gone (its supervisor was killed -9 while
`npm ci` ran in its own session): ended before a new worker touches the checkout.

The checkout lock guarantees no live worker is in it, so a process working there without a terminal
can only be such a leftover. Processes with a terminal (an operator's shell) are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

import psutil

from supervisor.common import proc_scan, proctree

log = logging.getLogger(__name__)


def _ours() -> set[int]:
    me = psutil.Process()
    return {me.pid, *(p.pid for p in me.parents()), *(p.pid for p in me.children(recursive=True))}


def _owner(pid: int) -> int:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return -1


def end_strays(checkout: Path, spared_uids: range = range(0)) -> list[str]:
    """End every process working in `checkout` that is neither ours nor on a terminal, nor of
    `spared_uids` (warm build servers: their manager ends them); their names."""
    root = str(checkout.resolve())
    # A warm build server works here on every command: left out before psutil's walk of the table.
    working_here = [pid for pid in proc_scan.pids_working_in(root) if _owner(pid) not in spared_uids]
    if not working_here:
        return []
    ours = _ours()  # psutil's walk of the whole table: only when something works here
    strays: dict[int, float] = {}
    names: list[str] = []
    for pid in working_here:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            cwd = proc.cwd()
            if pid in ours or not (cwd == root or cwd.startswith(root + os.sep)) or proc.terminal():
                continue
            strays[proc.pid] = proc.create_time()
            names.append(" ".join(proc.cmdline()[:3])[:80] or str(proc.pid))
    if strays:
        log.warning("ending processes a gone worker left in the checkout", extra={"processes": names})
        proctree.end_tree(strays, grace=1.0, first_signal=signal.SIGTERM, term_grace=1.0)
    return names
