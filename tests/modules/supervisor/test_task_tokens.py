"""Step Functions task tokens (supervisor/task_tokens.py): which callback, how a large output is cut,
heartbeats while held, and what a token the orchestrator forgot does. moto's Step Functions in-process."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from moto import mock_aws

from supervisor.queues import Received
from supervisor.task_tokens import (
    MAX_OUTPUT_BYTES,
    StepFunctions,
    TaskHeartbeats,
    callback_for,
    task_output,
    task_token_of,
)

REGION = "us-west-2"


def response(**fields):
    return {
        "type": "response",
        "commandId": "c1",
        "success": True,
        "interrupted": False,
        "errorCode": None,
        "error": None,
        "summary": "done",
        "filesChanged": ["a"],
        "steps": [],
        **fields,
    }


def test_a_token_is_read_from_any_shape_and_only_a_usable_one():
    assert task_token_of(json.dumps({"commandId": "c1", "taskToken": "AAAA"})) == "AAAA"
    assert task_token_of(json.dumps({"messageId": "m1", "taskToken": "BB"})) == "BB"
    assert task_token_of(json.dumps({"taskToken": ""})) is None
    assert task_token_of(json.dumps({"taskToken": "a\nb"})) is None
    assert task_token_of(json.dumps({"taskToken": 5})) is None
    assert task_token_of("not json") is None and task_token_of("[1]") is None


def test_success_failure_and_an_interrupt_give_the_callbacks_the_anchor_expects():
    assert callback_for("t", response()).output is not None
    failed = callback_for("t", response(success=False, errorCode="BUILD_FAILED", error="npm run build exited 1"))
    assert (failed.error, failed.cause, failed.output) == ("BUILD_FAILED", "npm run build exited 1", None)
    interrupted = callback_for("t", response(success=False, interrupted=True, errorCode="INTERRUPTED", error="newer"))
    assert interrupted.error == "PREEMPTED"
    assert len(callback_for("t", response(success=False, errorCode="X", error="e" * 100_000)).cause) == 32_768


def test_an_output_over_256_kb_is_cut_and_says_so():
    big = response(
        summary="s" * 300_000,
        filesChanged=[f"file-{i}.txt" for i in range(20_000)],
        steps=[{"step": "agent", "status": "ok", "details": "d" * 1000}],
    )
    text = task_output(big)
    cut = json.loads(text)
    assert len(text.encode()) <= MAX_OUTPUT_BYTES and cut["truncated"] is True
    assert cut["commandId"] == "c1" and cut["success"] is True and cut["steps"] == [{"step": "agent", "status": "ok"}]
    assert json.loads(task_output(response())) == response()  # small: as is


@pytest.fixture
def machine(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sqs = boto3.client("sqs", region_name=REGION)
        sfn = boto3.client("stepfunctions", region_name=REGION)
        queue = sqs.create_queue(QueueName="in")["QueueUrl"]
        task = {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "HeartbeatSeconds": 2,
            "Parameters": {"QueueUrl": queue, "MessageBody": {"taskToken.$": "$$.Task.Token", "messageId": "m1"}},
            "End": True,
        }
        arn = sfn.create_state_machine(
            name="edit",
            definition=json.dumps({"StartAt": "Edit", "States": {"Edit": task}}),
            roleArn="arn:aws:iam::123456789012:role/r",
        )["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
        deadline = time.monotonic() + 10
        while not (messages := sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages")):
            assert time.monotonic() < deadline
        yield sfn, execution, Received(messages[0]["MessageId"], messages[0]["ReceiptHandle"], messages[0]["Body"], 1)


def status(sfn, execution, wait: float = 5) -> str:
    deadline = time.monotonic() + wait
    while (
        found := sfn.describe_execution(executionArn=execution)["status"]
    ) == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def test_heartbeats_keep_a_task_alive_past_its_heartbeat_seconds_and_the_callback_ends_it(machine):
    sfn, execution, message = machine
    gone: list = []
    beats = TaskHeartbeats(lambda: [message], StepFunctions(None, sfn), every=0.5, on_gone=gone.append)
    for _ in range(8):  # 4 s: twice the state's HeartbeatSeconds
        beats.beat()
        time.sleep(0.5)
    assert sfn.describe_execution(executionArn=execution)["status"] == "RUNNING" and gone == []
    token = task_token_of(message.body)
    assert StepFunctions(None, sfn).call(callback_for(token, response())) is None
    assert status(sfn, execution) == "SUCCEEDED"
    assert json.loads(sfn.describe_execution(executionArn=execution)["output"])["commandId"] == "c1"


def test_a_task_the_orchestrator_gave_up_on_is_reported_once_and_its_callback_counts_as_made(machine):
    sfn, execution, message = machine
    assert status(sfn, execution, wait=6) == "FAILED"  # no heartbeat: HeartbeatSeconds ran out
    gone: list = []
    beats = TaskHeartbeats(lambda: [message], StepFunctions(None, sfn), every=0.1, on_gone=gone.append)
    beats.beat()
    time.sleep(0.2)
    beats.beat()
    assert gone == [message]  # once
    token = task_token_of(message.body)
    assert StepFunctions(None, sfn).call(callback_for(token, response())) is None  # no retry loop
