"""Process-tree helpers (supervisor/common/proctree.py) that need no tree to test."""

from __future__ import annotations

import subprocess
import sys


def test_our_processes_hide_their_environment_from_the_agents_commands():
    """PR_SET_DUMPABLE 0: /proc/<pid>/environ of the supervisor and workers is closed to the same user."""
    code = (
        "import ctypes; from supervisor.common.proctree import hide_environment; "
        "print(hide_environment(), ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))"  # PR_GET_DUMPABLE
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "0"]
