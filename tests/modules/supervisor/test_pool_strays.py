"""The supervisor's sweep of strays (supervisor/pool.py `WorkerPool.track`): a process re-parented to it
that no run holds is ended; its workers, services and the processes a run holds are left alone."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import ROOT

# Run as a subreaper of its own, as the supervisor is: orphans of its grandchildren come to it.
SCRIPT = r"""
import json, subprocess, sys, time
from types import SimpleNamespace
import psutil
from supervisor.common import proctree
from supervisor.pool import WorkerPool

assert proctree.become_subreaper()

def orphan():
    '''A `sleep` whose parent (sh) has exited: re-parented to us.'''
    out = subprocess.run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
    return int(out.stdout)

stray, held = orphan(), orphan()
worker = subprocess.Popen(["sleep", "60"])
pool = WorkerPool(post=lambda event: None)
pool.unwaited.add(worker.pid)
run = SimpleNamespace(worker=None, phase="interrupting", tree={held: proctree.creation_time(held)})
pool.track([run])
alive_after_first_look = psutil.pid_exists(stray) and psutil.Process(stray).status() != "zombie"
deadline = time.monotonic() + 15
while time.monotonic() < deadline:
    time.sleep(0.5)
    pool.track([run])
    if not psutil.pid_exists(stray) or psutil.Process(stray).status() == "zombie":
        break
ended = not psutil.pid_exists(stray) or psutil.Process(stray).status() == "zombie"
kept = [psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in (held, worker.pid)]
for pid in (held, worker.pid, stray):
    try:
        psutil.Process(pid).kill()
    except psutil.Error:
        pass
print(json.dumps({"firstLook": alive_after_first_look, "ended": ended, "kept": kept}))
"""


def test_a_stray_is_ended_and_workers_and_held_processes_are_left_alone():
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["firstLook"] is True  # seen once: not yet a stray (our own children come and go)
    assert result["ended"] is True, completed.stderr[-3000:]
    assert result["kept"] == [True, True]  # held by a run being interrupted; a worker
    assert "processes left by a worker that is gone" in completed.stderr
