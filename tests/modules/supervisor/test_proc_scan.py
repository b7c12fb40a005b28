"""The first passes over /proc (supervisor/common/proc_scan.py) find what psutil would: a process by its
working folder, and a process by its uid, also one that made itself non-dumpable (some of its /proc
files then belong to root)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from supervisor.common import proc_scan
from supervisor.local.stack import job_python

HIDDEN = "import ctypes, time; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); print('ready', flush=True); time.sleep(60)"


def test_a_process_is_found_by_its_working_folder(tmp_path):
    (tmp_path / "below").mkdir()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path / "below")
    try:
        assert child.pid in proc_scan.pids_working_in(str(tmp_path))
        assert child.pid not in proc_scan.pids_working_in(str(tmp_path) + "-other")
        assert os.getpid() not in proc_scan.pids_working_in(str(tmp_path))
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="starting a process as another uid needs root")
def test_a_process_is_found_by_its_uid_even_when_not_dumpable():
    uid = 64_999
    child = subprocess.Popen(
        [job_python(), "-c", HIDDEN], user=uid, group=uid, stdout=subprocess.PIPE, text=True, cwd="/"
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        assert proc_scan.pids_of_uid(uid) == [child.pid]
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert proc_scan.pids_of_uid(uid) == []
