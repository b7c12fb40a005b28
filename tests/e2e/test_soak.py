"""The chaos soak's short variant (bench/soak.py): commands in bursts from three clients, interrupts,
two supervisor kill -9s with restarts and a worker kill -9, through the real supervisor."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT

pytestmark = pytest.mark.e2e


def test_nothing_is_lost_answered_twice_or_left_running_under_kill_9s(installed_site):
    argv = [sys.executable, str(ROOT / "bench" / "soak.py"), "--commands", "20", "--json"]
    argv += ["--installed", str(installed_site)]
    argv += ["--supervisor-kills", "2", "--worker-kills", "1", "--seed", "7"]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=400, cwd=ROOT)
    assert completed.stdout.strip(), completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["problems"] == [], result
    assert result["supervisorKills"] == 2 and result["workerKills"] == 1 and result["commands"] == 20
    assert result["lostMessages"] == result["doubleResponses"] == result["lostCommits"] == 0
    assert result["orphansAtEnd"] == result["orphansOverlappingLiveWork"] == result["crashes"] == 0
    assert completed.returncode == 0
