"""bin/status and bin/healthcheck, run from a shell as an operator would."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from helpers import QUICK_BUILD, ROOT, OutputWatcher, SupervisorProcess


def shell(command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.e2e
def test_status_and_healthcheck_follow_a_running_supervisor(
    base_env, queues, sqs, prewarm, make_bucket, workspace_root, tmp_path
):
    prewarm()
    make_bucket("acme")
    env = {
        **base_env,
        "INPUT_QUEUE_URL": queues["input"],
        "OUTPUT_QUEUE_URL": queues["output"],
        "PROGRESS_EVENTS": "true",
        "SHUTDOWN_GRACE_SECONDS": "2",
        "BUILD_COMMAND": QUICK_BUILD,
    }
    supervisor = SupervisorProcess(env, tmp_path / "supervisor.log")
    watcher = OutputWatcher(sqs, queues["output"])
    try:
        body = {
            "instruction": "Slow one\n@fake sleep 30",
            "commandId": "cmd-status",
            "chatThreadId": "c",
            "clientId": "acme",
            "userId": "u1",
        }
        sqs.send_message(QueueUrl=queues["input"], MessageBody=json.dumps(body))
        watcher.progress("cmd-status", "agent")
        time.sleep(1)  # the status file is rewritten about twice a second

        shown = shell(f"bin/status --workspace {workspace_root}")
        assert shown.returncode == 0, shown.stderr
        assert "running" in shown.stdout and "workers: 1 of 2" in shown.stdout
        assert "acme/u1/site  cmd-status  branch thread-c  running/agent" in shown.stdout
        assert "fake_claude" in shown.stdout  # the live process tree
        as_json = json.loads(shell(f"bin/status --workspace {workspace_root} --json").stdout)
        assert as_json["workers"][0]["step"] == "agent"

        healthy = shell(f"WORKSPACE_PATH={workspace_root} bin/healthcheck")
        assert healthy.returncode == 0 and healthy.stdout.startswith("healthy")
    finally:
        supervisor.process.kill()  # a dead loop: the health check must notice
        supervisor.stop()
        watcher.stop()
    unhealthy = shell(f"bin/healthcheck --workspace {workspace_root}")
    assert unhealthy.returncode == 1 and "not running" in unhealthy.stderr


@pytest.mark.parametrize("script", ["status", "healthcheck"])
def test_operator_scripts_explain_themselves_and_fail_clearly(script, tmp_path):
    helped = shell(f"bin/{script} --help")
    assert helped.returncode == 0 and "--workspace" in helped.stdout
    missing = shell(f"bin/{script} --workspace {tmp_path / 'nowhere'}")
    assert missing.returncode != 0 and len(missing.stderr.strip().splitlines()) == 1
    assert "not a folder" in missing.stderr and "Traceback" not in missing.stderr
    empty = shell(f"bin/{script} --workspace {tmp_path}")
    assert empty.returncode != 0 and "no status file" in empty.stderr
