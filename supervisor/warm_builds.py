"""The warm build manager (steps/warm/manager.py) of this supervisor, when BUILD_MODE=warm.

A child of ours, outside every worker's tree (an interrupt never reaches it), in a folder only root
may enter; workers find its socket in their environment. Restarted when it dies (at most every
RESTART_SECONDS; meanwhile builds run cold), ended with the supervisor.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from steps.processes.shell import scrubbed_env
from steps.warm.client import SOCKET_VARIABLE
from supervisor.contract.config import Config

log = logging.getLogger("supervisor.warm")

RESTART_SECONDS = 10.0
STOP_SECONDS = 10.0


class WarmBuilds:
    def __init__(self, config: Config):
        self.enabled = config.build_mode == "warm"
        self.process: subprocess.Popen[bytes] | None = None
        self._last_start = float("-inf")
        self.folder: Path | None = None
        if not self.enabled:
            return
        self.folder = Path(tempfile.mkdtemp(prefix="webordinary-warm-"))  # 0700, ours
        self.socket = self.folder / "manager.sock"
        os.environ[SOCKET_VARIABLE] = str(self.socket)  # before any worker is started
        self.check(now=0.0)

    def pids(self) -> set[int]:
        return {self.process.pid} if self.process is not None and self.process.poll() is None else set()

    def check(self, now: float) -> None:
        """Start the manager, or start it again if it died."""
        if not self.enabled or (self.process is not None and self.process.poll() is None):
            return
        if now - self._last_start < RESTART_SECONDS:
            return  # (meanwhile builds run cold)
        if self.process is not None:
            log.warning("warm build manager exited (%s); starting it again", self.process.returncode)
        self._last_start = now
        # Our configuration, not our credentials: the manager needs none.
        env = scrubbed_env(WEBORDINARY_WARM_PARENT=str(os.getpid()))
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "steps.warm.manager", str(self.socket)],
                env=env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the terminal is ours to pass on, not its
            )
        except OSError as error:
            log.error("could not start the warm build manager: %s", error)
            self.process = None

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            os.environ.pop(SOCKET_VARIABLE, None)
