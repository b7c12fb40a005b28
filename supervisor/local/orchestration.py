"""A local Step Functions state machine in front of the input queue (`bin/run-local --step-functions`):
the anchor's newest orchestration, one Task state that sends the instruction with its task token
(`sqs:sendMessage.waitForTaskToken`) and waits for our callback, heartbeats included. moto runs it."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

HEARTBEAT_SECONDS = 60


def create_state_machine(
    stepfunctions: Any, queue_url: str, heartbeat_seconds: int = HEARTBEAT_SECONDS, *, attachments: bool = False
) -> str:
    """With `attachments`, the message carries the execution input's `attachments` too (every input must
    then hold that list, empty or not)."""
    body = {
        "taskToken.$": "$$.Task.Token",
        "messageId.$": "$.messageId",
        "text.$": "$.text",
        "threadId.$": "$.threadId",
        "projectId.$": "$.projectId",
        "userId.$": "$.userId",
        **({"attachments.$": "$.attachments"} if attachments else {}),
    }
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "HeartbeatSeconds": heartbeat_seconds,
        "TimeoutSeconds": 600,
        "Parameters": {"QueueUrl": queue_url, "MessageBody": body},
        "End": True,
    }
    return stepfunctions.create_state_machine(
        name=f"webordinary-edit-{uuid.uuid4().hex[:8]}",
        definition=json.dumps({"StartAt": "Edit", "States": {"Edit": task}}),
        roleArn="arn:aws:iam::123456789012:role/webordinary-edit-local",
    )["stateMachineArn"]


def start_execution(stepfunctions: Any, machine: str, command: dict[str, Any]) -> str:
    name = f"{command['messageId']}-{uuid.uuid4().hex[:6]}"
    return stepfunctions.start_execution(stateMachineArn=machine, name=name, input=json.dumps(command))["executionArn"]


def execution_outcome(stepfunctions: Any, execution: str, timeout: float = 60) -> dict[str, Any]:
    """The execution once it has ended (our callback ends it): status, and output or error."""
    deadline = time.monotonic() + timeout
    while (described := stepfunctions.describe_execution(executionArn=execution))["status"] == "RUNNING":
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return {key: described.get(key) for key in ("status", "error", "cause", "output")}
