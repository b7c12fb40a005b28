"""Invalid messages are answered and dead-lettered; bad configuration stops start-up cleanly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT, SupervisorProcess, drain


@pytest.mark.e2e
def test_invalid_messages_get_an_error_response_and_go_to_the_dlq(supervisor_env, queues, sqs, make_bucket, tmp_path):
    make_bucket("acme")
    supervisor = SupervisorProcess(supervisor_env, tmp_path / "supervisor.log")
    bodies = [
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"commandId": "no-instruction", "chatThreadId": "c", "clientId": "acme", "userId": "u1"}),
        json.dumps(
            {"commandId": "bad-client", "instruction": "x", "chatThreadId": "c", "clientId": "../etc", "userId": "u1"}
        ),
        json.dumps(
            {
                "commandId": "bad-type",
                "type": "chat",
                "instruction": "x",
                "threadId": "c",
                "projectId": "acme",
                "userId": "u1",
            }
        ),
        json.dumps(
            {"commandId": "bad-thread", "instruction": "x", "chatThreadId": "a\nb", "clientId": "acme", "userId": "u1"}
        ),
        json.dumps({"instruction": "no command id", "chatThreadId": "c", "clientId": "acme", "userId": "u1"}),
        json.dumps(
            {
                "commandId": "valid-after",
                "instruction": "@fake no-change",
                "chatThreadId": "c",
                "clientId": "acme",
                "userId": "u1",
            }
        ),
    ]
    for body in bodies:
        sqs.send_message(QueueUrl=queues["input"], MessageBody=body)
    try:
        responses = {r["commandId"]: r for r in drain(sqs, queues["output"], expect=5, timeout=120)}
        dead = drain(sqs, queues["dlq"], expect=7, timeout=30)
    finally:
        assert supervisor.stop() == 0
    invalid = {"no-instruction", "bad-client", "bad-type", "bad-thread"}
    assert set(responses) == invalid | {"valid-after"}
    for command_id in invalid:
        response = responses[command_id]
        assert response["errorCode"] == "INVALID_MESSAGE" and response["success"] is False
        assert response["error"]
    assert "instruction" in responses["no-instruction"]["error"]
    assert "clientId" in responses["bad-client"]["error"]
    assert "type" in responses["bad-type"]["error"]
    assert "chatThreadId" in responses["bad-thread"]["error"]
    assert responses["valid-after"]["success"] is True  # the supervisor kept running
    assert len(dead) == 7  # every invalid message, readable commandId or not
    attributes = sqs.get_queue_attributes(QueueUrl=queues["input"], AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MAX_WORKERS", "two", "MAX_WORKERS must be a whole number"),
        ("MAX_WORKERS", "0", "MAX_WORKERS must be at least 1"),
        ("AGENT_TIMEOUT_SECONDS", "-5", "AGENT_TIMEOUT_SECONDS must be at least 1"),
        ("GIT_PUSH_ENABLED", "maybe", "GIT_PUSH_ENABLED must be true or false"),
        ("DEPLOY_STRATEGY", "ftp", "DEPLOY_STRATEGY must be one of"),
        ("INPUT_QUEUE_URL", "", "INPUT_QUEUE_URL is required"),
        ("OUTPUT_QUEUE_URL", "queue-name", "OUTPUT_QUEUE_URL must be an http(s) URL"),
        ("BUILD_DIR", "../outside", "BUILD_DIR must be a folder inside the checkout"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be one of"),
    ],
)
def test_bad_configuration_stops_start_up_with_one_line(name, value, expected):
    env = {"PATH": "/usr/bin:/bin", "INPUT_QUEUE_URL": "http://127.0.0.1:9/queue/in", name: value}
    completed = subprocess.run(
        [sys.executable, "-m", "supervisor"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in completed.stderr
