"""One ladder per tree: who ends a worker's command when the worker is stopped.

Under a live supervisor the worker leaves at once and the supervisor's ladder (which reaches every
process) ends the tree; with its supervisor dead (kill -9), the worker ends its tree itself, and a
second signal does not cut that short.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import ROOT, WORKER_HARNESS, message, run_worker, still_alive

from supervisor.contract.command import parse_command

pytestmark = pytest.mark.e2e


def job(env: dict[str, str], instruction: str) -> str:
    command = parse_command(json.dumps(message(instruction=instruction)), env["REPO_URL"])
    return json.dumps({"mode": "run", "command": command.to_dict()})


def wait_for(path: Path, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return int(path.read_text())


def test_under_a_live_supervisor_the_worker_leaves_the_tree_to_its_ladder(base_env, prewarm, tmp_path):
    prewarm()
    agent_pid = tmp_path / "agent.pid"
    instruction = f"Slow\n@fake pidfile {agent_pid}\n@fake ignore-sigint\n@fake sleep 60"
    env = {**base_env, "WEBORDINARY_SUPERVISOR_PID": str(os.getpid()), "INTERRUPT_GRACE_SECONDS": "10"}
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER_HARNESS],
        stdin=subprocess.PIPE,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    worker.stdin.write(job(env, instruction).encode())
    worker.stdin.close()
    agent = psutil.Process(wait_for(agent_pid))
    started = time.monotonic()
    worker.send_signal(signal.SIGINT)
    assert worker.wait(30) == 130
    # It left well before the 10 s grace instead of waiting it out, and did not signal the agent (still alive).
    assert time.monotonic() - started < 8 and agent.is_running() and agent.status() != psutil.STATUS_ZOMBIE
    agent.kill()


def test_with_its_supervisor_dead_the_worker_ends_its_tree_despite_a_second_signal(base_env, prewarm, tmp_path):
    prewarm()
    agent_pid, grandchild_pid = tmp_path / "agent.pid", tmp_path / "grandchild.pid"
    instruction = f"Slow\n@fake pidfile {agent_pid}\n@fake grandchild {grandchild_pid}\n@fake sleep 60"
    env = {**base_env, "INTERRUPT_GRACE_SECONDS": "1"}
    # A stand-in supervisor: starts the worker (naming itself as its supervisor), then waits to be killed.
    parent_code = (
        "import os, subprocess, sys, time\n"
        f"env = dict(os.environ, WEBORDINARY_SUPERVISOR_PID=str(os.getpid()))\n"
        f"w = subprocess.Popen([sys.executable, '-c', {WORKER_HARNESS!r}], stdin=subprocess.PIPE, env=env,"
        f" cwd={str(ROOT)!r}, start_new_session=True, stdout=subprocess.DEVNULL)\n"
        f"w.stdin.write({job(env, instruction)!r}.encode()); w.stdin.close()\n"
        "print(w.pid, flush=True); time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], env=env, stdout=subprocess.PIPE, text=True)
    worker = psutil.Process(int(parent.stdout.readline()))
    parent.stdout.close()
    tree = {pid: psutil.Process(pid).create_time() for pid in (wait_for(agent_pid), wait_for(grandchild_pid))}
    parent.kill()  # the supervisor dies: the worker gets SIGTERM from the kernel…
    parent.wait()
    time.sleep(0.005)
    worker.send_signal(signal.SIGTERM)  # …and a second one 5 ms later, as seen when a container stops
    deadline = time.monotonic() + 20
    while still_alive(tree) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert still_alive(tree) == [], "the worker left its tree running"


def test_a_process_a_gone_worker_left_in_the_checkout_is_ended_before_the_next_command(base_env, prewarm, make_bucket):
    make_bucket("acme")
    checkout = prewarm()
    stray = subprocess.Popen(
        ["node", "-e", "setInterval(() => {}, 1000)", "stray-npm-ci"],
        cwd=checkout,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # as a dead supervisor's worker's `npm ci` would be: its own session, no terminal
    try:
        response = run_worker(message(instruction="Make the header blue"), base_env)
        assert response["success"] is True, response["error"]
        assert stray.wait(10) is not None  # ended before the worker touched the checkout
        assert '"endedStrays": ["node -e setInterval' in response["_log"]
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()
