"""bin/watch: a change rebuilds the site once (no rebuild loop on its own output); Ctrl-C leaves nothing running."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from helpers import ROOT, processes_in, still_alive

pytestmark = pytest.mark.e2e


def builds(log_path) -> int:
    count = 0
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and json.loads(line).get("event") == "build ok":
            count += 1
    return count


def wait_until(predicate, log_path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out; bin/watch wrote:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)


def building(checkout) -> bool:
    return any("astro" in " ".join(line) for line in _command_lines(checkout))


def test_a_change_rebuilds_once_and_ctrl_c_stops_the_whole_build(prewarm, base_env, tmp_path):
    checkout = prewarm()
    log_path = tmp_path / "watch.log"
    with log_path.open("wb") as log:
        watcher = subprocess.Popen(
            [str(ROOT / "bin" / "watch"), str(checkout)], cwd=ROOT, env=base_env, stdout=log, stderr=log
        )
    try:
        # Saved during the first build: built again after it (the watcher runs before the first build).
        wait_until(lambda: building(checkout), log_path, timeout=60)
        page = checkout / "src" / "pages" / "index.astro"
        page.write_text(page.read_text().replace("Welcome to the shop.", "Welcome, watcher."))
        wait_until(lambda: builds(log_path) == 2, log_path)
        assert "Welcome, watcher." in read_or_empty(checkout / "dist" / "index.html")
        time.sleep(4)  # the build rewrote dist/ and .astro/: that must not start another build
        assert builds(log_path) == 2

        page.write_text(page.read_text() + "\n")  # one more change, stopped while it builds
        wait_until(lambda: building(checkout), log_path, timeout=30)
        tree = processes_in(checkout)
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(30) == 0
        time.sleep(0.5)
        assert still_alive(tree) == []
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait(10)


def read_or_empty(path) -> str:
    """dist/ is removed while a build runs."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _command_lines(folder) -> list[list[str]]:
    import psutil

    lines = []
    for pid in processes_in(folder):
        try:
            lines.append(psutil.Process(pid).cmdline())
        except psutil.Error:
            continue
    return lines


def test_watch_refuses_a_folder_that_is_not_a_site(tmp_path):
    completed = subprocess.run([str(ROOT / "bin" / "watch"), str(tmp_path)], capture_output=True, text=True)
    assert completed.returncode == 1 and "no package.json" in completed.stderr
