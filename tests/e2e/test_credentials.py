"""GITHUB_TOKEN reaches git only through askpass: never in logs, argv, .git/config or the agent's environment."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from git_http_server import serve_git
from helpers import QUICK_BUILD, git, message, run_worker

from steps.git.layout import git_dir_for

pytestmark = pytest.mark.e2e
CANARY = "ghp_canary_4f1b2c9d7e"


class CommandLineWatcher:
    """Reads every process's command line in /proc, over and over, while a run goes on."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        self.seen.add((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
                    except OSError:
                        continue
            self._stop.wait(0.005)

    def stop(self) -> set[str]:
        self._stop.set()
        self._thread.join()
        return self.seen


def test_token_is_used_for_https_remotes_and_never_shows(base_env, site_remote, make_bucket, agent_log, tmp_path):
    make_bucket("acme")
    git(site_remote, "config", "http.receivepack", "true")
    server = serve_git(site_remote.parent, CANARY)
    url = f"http://127.0.0.1:{server.server_address[1]}/{site_remote.name}"
    env = {**base_env, "REPO_URL": url, "BUILD_COMMAND": QUICK_BUILD}
    try:
        refused = run_worker(message(commandId="no-token"), env)  # without the token the remote says no
        assert refused["errorCode"] == "INTERNAL" and "workspace" in refused["error"]

        watcher = CommandLineWatcher()
        response = run_worker(message(commandId="with-token"), {**env, "GITHUB_TOKEN": CANARY})
        command_lines = watcher.stop()
    finally:
        server.shutdown()
        server.server_close()

    assert response["success"] is True and response["pushSuccess"] is True, response["error"]
    assert response["commit"] == git(site_remote, "rev-parse", "thread-chat-1").stdout.strip()
    assert len(command_lines) > 20  # the watcher did see the run's processes
    assert not [line for line in command_lines if CANARY in line]
    assert CANARY not in response["_log"]  # the worker's log lines
    checkout = Path(base_env["WORKSPACE_PATH"]) / "acme" / "u1" / "site"
    assert CANARY not in (git_dir_for(checkout) / "config").read_text()
    assert CANARY not in agent_log.read_text()  # the environment the agent saw
    assert CANARY not in str(response)
