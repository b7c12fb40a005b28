"""Regression: a slow output queue once made a finished command look dead (WORKER_DIED) and run again.

The pipe reader used to send progress to SQS itself; a slow send held it up while the worker wrote its
result and exited, and the loop gave up on the reader. Now the loop sends; here with real workers.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest
from helpers import QUICK_BUILD, message

from supervisor.contract.config import load_config
from supervisor.loop import Supervisor
from supervisor.memory_queues import MemoryQueues

pytestmark = pytest.mark.e2e


class SlowOutputQueues(MemoryQueues):
    def respond(self, body):
        if body["type"] == "progress":
            time.sleep(0.8)  # twelve step events: far longer than the reader was ever waited for
        return super().respond(body)


def test_a_slow_output_queue_never_turns_a_finished_command_into_worker_died(
    base_env, prewarm, make_bucket, monkeypatch
):
    make_bucket("acme")
    prewarm()
    env = {
        **base_env,
        "BUILD_COMMAND": QUICK_BUILD,
        "PROGRESS_EVENTS": "true",
        "INPUT_QUEUE_URL": "http://memory/input",
        "OUTPUT_QUEUE_URL": "http://memory/output",
        "SHUTDOWN_GRACE_SECONDS": "2",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the workers inherit it
    queues = SlowOutputQueues()
    supervisor = Supervisor(load_config(env), queues)  # type: ignore[arg-type]
    queues.send(message(commandId="cmd-slow"))
    loop = threading.Thread(target=supervisor.run, daemon=True)
    loop.start()
    deadline = time.monotonic() + 120
    while not [r for r in queues.responses if r["type"] == "response"] and time.monotonic() < deadline:
        time.sleep(0.1)
    supervisor.on_signal(signal.SIGTERM)
    loop.join(30)
    responses = [r for r in queues.responses if r["type"] == "response"]
    assert [(r["commandId"], r["success"], r["errorCode"]) for r in responses] == [("cmd-slow", True, None)]
    assert len([r for r in queues.responses if r["type"] == "progress" and r["status"] != "tool"]) == 12
    assert queues.remaining() == [] and not loop.is_alive()
