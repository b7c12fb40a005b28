"""Orchestrated by Step Functions (issue 19): real state machines on moto (its `execute_state_machine`
setting on) whose task is `sqs:sendMessage.waitForTaskToken` into our input queue, a real supervisor,
worker, git, build and deploy. The execution's status and output are what the orchestrator sees."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from typing import Any

import boto3
import pytest
import requests
from helpers import QUICK_BUILD, REGION, SupervisorProcess, bucket_keys, commits_for, git_out

from supervisor.local.orchestration import create_state_machine, execution_outcome, start_execution

pytestmark = pytest.mark.e2e


@pytest.fixture
def stepfunctions(moto_endpoint: str, aws_env: dict[str, str]) -> Any:
    # moto runs the state machine; its SQS task calls moto back at localhost:MOTO_PORT.
    os.environ["MOTO_PORT"] = moto_endpoint.rsplit(":", 1)[1]
    requests.post(
        f"{moto_endpoint}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}, timeout=10
    )
    return boto3.client("stepfunctions", region_name=REGION, endpoint_url=moto_endpoint)


def state_machine(stepfunctions: Any, queue_url: str, heartbeat_seconds: int = 20) -> str:
    """The anchor's orchestration in one state, as `bin/run-local --step-functions` makes it."""
    return create_state_machine(stepfunctions, queue_url, heartbeat_seconds)


def start(stepfunctions: Any, machine: str, message_id: str, text: str, thread: str = "chat-a") -> str:
    command = {"messageId": message_id, "text": text, "threadId": thread, "projectId": "acme", "userId": "u1"}
    return start_execution(stepfunctions, machine, command)


def finished(stepfunctions: Any, execution: str, timeout: float = 120) -> dict[str, Any]:
    outcome = execution_outcome(stepfunctions, execution, timeout)
    assert outcome["status"] != "RUNNING", f"{execution} still running"
    return outcome


@pytest.fixture
def env(supervisor_env: dict[str, str], make_bucket, prewarm) -> dict[str, str]:
    make_bucket("acme")
    prewarm()
    return {**supervisor_env, "BUILD_COMMAND": QUICK_BUILD, "TASK_HEARTBEAT_SECONDS": "1", "PROGRESS_EVENTS": "true"}


@pytest.fixture
def supervisor(env: dict[str, str], tmp_path):
    started: list[SupervisorProcess] = []

    def launch(**overrides: str) -> SupervisorProcess:
        process = SupervisorProcess({**env, **overrides}, tmp_path / f"supervisor-{len(started)}.log")
        started.append(process)
        return process

    yield launch
    for process in started:
        process.stop()


def test_an_execution_succeeds_with_our_response_a_pushed_commit_and_a_live_page(
    stepfunctions, queues, supervisor, watcher, site_remote, s3, bucket_prefix
):
    machine = state_machine(stepfunctions, queues["input"])
    supervisor()
    execution = start(
        stepfunctions, machine, "m-1", "Add a contact page\n@fake write src/pages/contact.astro <p>Hi</p>"
    )
    described = finished(stepfunctions, execution)
    assert described["status"] == "SUCCEEDED", described
    output = json.loads(described["output"])
    assert output["success"] is True and output["commandId"] == output["messageId"] == "m-1"
    assert output["siteUrl"] == output["previewUrl"] and output["buildSuccess"] and output["deploySuccess"]
    assert commits_for(site_remote, "m-1") == [(output["commit"], "Add a contact page")]
    assert git_out(site_remote, "rev-parse", "thread-chat-a") == output["commit"]
    assert "contact/index.html" in bucket_keys(s3, f"{bucket_prefix}-acme")
    assert watcher.response("m-1")["commit"] == output["commit"]  # the output queue heard it too


def test_a_failing_build_fails_the_execution_with_build_failed(stepfunctions, queues, supervisor):
    machine = state_machine(stepfunctions, queues["input"])
    supervisor(BUILD_COMMAND="node -e process.exit(3)")
    described = finished(stepfunctions, start(stepfunctions, machine, "m-1", "Edit the header"))
    assert (described["status"], described.get("error")) == ("FAILED", "BUILD_FAILED"), described


def test_an_interrupt_fails_the_first_execution_preempted_and_the_second_succeeds(
    stepfunctions, queues, supervisor, watcher
):
    machine = state_machine(stepfunctions, queues["input"])
    supervisor()
    first = start(stepfunctions, machine, "m-1", "Slow edit\n@fake sleep 30")
    watcher.progress("m-1", "agent")
    second = start(stepfunctions, machine, "m-2", "Quick edit")
    assert (finished(stepfunctions, first)["status"], finished(stepfunctions, first).get("error")) == (
        "FAILED",
        "PREEMPTED",
    )
    assert finished(stepfunctions, second)["status"] == "SUCCEEDED"


def test_a_command_longer_than_heartbeat_seconds_succeeds_on_its_heartbeats(stepfunctions, queues, supervisor):
    machine = state_machine(stepfunctions, queues["input"], heartbeat_seconds=3)
    supervisor()
    described = finished(stepfunctions, start(stepfunctions, machine, "m-1", "Think\n@fake sleep 8"))
    assert described["status"] == "SUCCEEDED", described  # 8 s of agent, 3 s heartbeat timeout


def test_a_supervisor_killed_mid_command_makes_exactly_one_callback(
    stepfunctions, queues, supervisor, watcher, site_remote
):
    machine = state_machine(stepfunctions, queues["input"])
    first = supervisor(VISIBILITY_TIMEOUT_SECONDS="6")
    execution = start(stepfunctions, machine, "m-1", "Slow page\n@fake slow-build 4")
    watcher.progress("m-1", "build")
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    supervisor(VISIBILITY_TIMEOUT_SECONDS="6")
    described = finished(stepfunctions, execution)
    assert described["status"] == "SUCCEEDED", described
    history = stepfunctions.get_execution_history(executionArn=execution)["events"]
    callbacks = [e for e in history if e["type"] in ("TaskSucceeded", "TaskFailed")]
    assert len(callbacks) == 1
    assert [c for c, _ in commits_for(site_remote, "m-1")] == [json.loads(described["output"])["commit"]]


def test_an_interrupt_message_on_the_interrupt_queue_preempts_the_running_command(
    stepfunctions, queues, sqs, supervisor, watcher
):
    interrupts = sqs.create_queue(QueueName=f"interrupts-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    machine = state_machine(stepfunctions, queues["input"])
    supervisor(INTERRUPT_QUEUE_URL=interrupts)
    execution = start(stepfunctions, machine, "m-1", "Slow edit\n@fake sleep 30")
    watcher.progress("m-1", "agent")
    stop = {"type": "interrupt", "projectId": "acme", "userId": "u1", "reason": "the user pressed stop"}
    sqs.send_message(QueueUrl=interrupts, MessageBody=json.dumps(stop))
    described = finished(stepfunctions, execution)
    assert (described["status"], described.get("error")) == ("FAILED", "PREEMPTED"), described
    response = watcher.response("m-1")
    assert response["interrupted"] is True and "the user pressed stop" in response["error"]
    deadline = time.monotonic() + 10
    while (
        sqs.get_queue_attributes(QueueUrl=interrupts, AttributeNames=["All"])["Attributes"][
            "ApproximateNumberOfMessagesNotVisible"
        ]
        != "0"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.2)
