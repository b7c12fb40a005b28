"""FIFO queues end to end (issue 19): FIFO input, output and dead-letter queues, two containers sharing
the input with LEASE_TABLE (FIFO inboxes), an interrupt through INTERRUPT_QUEUE_URL (a FIFO input holds
a group's next message until the running one is deleted, so a newer command cannot interrupt)."""

from __future__ import annotations

import json
import time
import uuid

import boto3
import pytest
from helpers import QUICK_BUILD, REGION, SupervisorProcess, commits_for, prewarm_checkout, wait_until_settled

from supervisor.sharing.lease_table import create_table

pytestmark = pytest.mark.e2e
CLIENTS = ("acme", "beta")


@pytest.fixture
def fifo_queues(sqs) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    dlq = sqs.create_queue(QueueName=f"dlq-{suffix}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})
    made = {"dlq": dlq}
    for name in ("input", "output"):
        attributes = {"FifoQueue": "true", "VisibilityTimeout": "60"}
        if name == "input":
            attributes["RedrivePolicy"] = redrive
        made[name] = sqs.create_queue(QueueName=f"{name}-{suffix}.fifo", Attributes=attributes)["QueueUrl"]
    made["interrupts"] = sqs.create_queue(QueueName=f"interrupts-{suffix}")["QueueUrl"]
    return made


def send(sqs, queues, command_id: str, instruction: str, client: str) -> None:
    body = {
        "instruction": instruction,
        "commandId": command_id,
        "chatThreadId": f"chat-{client}",  # one branch per client: the clients share one remote here
        "clientId": client,
        "userId": "u1",
    }
    sqs.send_message(
        QueueUrl=queues["input"],
        MessageBody=json.dumps(body),
        MessageGroupId=f"{client}/u1",
        MessageDeduplicationId=command_id,
    )


def responses(sqs, url: str, want: int, timeout: float = 180) -> list[dict]:
    found: list[dict] = []
    deadline = time.monotonic() + timeout
    while len([r for r in found if r["type"] == "response"]) < want and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return [r for r in found if r["type"] == "response"]


def agent_started(sqs, url: str, command_id: str, timeout: float = 60) -> None:
    """Wait for the command's agent step to start (its progress message); no response may come first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            body = json.loads(message["Body"])
            assert body["type"] == "progress", body
            if body["commandId"] == command_id and body.get("step") == "agent" and body.get("status") == "started":
                return
    raise AssertionError(f"{command_id}'s agent did not start within {timeout:g} s")


def test_two_containers_on_fifo_queues_answer_each_command_once_and_take_interrupts(
    sqs, aws_env, base_env, make_bucket, workspace_root, site_remote, installed_site, fifo_queues, tmp_path
):
    dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    table = f"leases-{uuid.uuid4().hex[:8]}"
    create_table(dynamodb, table)
    for client in CLIENTS:
        make_bucket(client)
        prewarm_checkout(workspace_root, site_remote, installed_site, client, "u1")
    env = {
        **base_env,
        "INPUT_QUEUE_URL": fifo_queues["input"],
        "OUTPUT_QUEUE_URL": fifo_queues["output"],
        "DLQ_URL": fifo_queues["dlq"],
        "INTERRUPT_QUEUE_URL": fifo_queues["interrupts"],
        "LEASE_TABLE": table,
        "LEASE_SECONDS": "6",
        "MAX_WORKERS": "1",
        "SHUTDOWN_GRACE_SECONDS": "3",
        "INTERRUPT_GRACE_SECONDS": "1",
        "BUILD_COMMAND": QUICK_BUILD,
        "PROGRESS_EVENTS": "true",  # the slow command's agent start says an interrupt has something to stop
    }
    supervisors = [SupervisorProcess(env, tmp_path / f"supervisor-{i}.log") for i in range(2)]
    try:
        sent = []
        for round_ in range(2):
            for client in CLIENTS:
                send(sqs, fifo_queues, f"{client}-{round_}", f"Note {client}-{round_}", client)
                sent.append(f"{client}-{round_}")
        send(sqs, fifo_queues, "acme-0", "Note acme-0", "acme")  # a resend within 5 minutes: deduplicated
        sqs.send_message(
            QueueUrl=fifo_queues["input"], MessageBody="not json", MessageGroupId="x", MessageDeduplicationId="bad"
        )
        answered = responses(sqs, fifo_queues["output"], want=len(sent))
        by_id: dict = {}
        for response in answered:
            by_id.setdefault(response.get("commandId"), []).append(response)
        assert sorted(k for k in by_id if k) == sorted(sent), by_id.keys()
        outcomes = {k: [(r["success"], r["errorCode"], r["error"]) for r in v] for k, v in by_id.items()}
        assert all(len(v) == 1 for v in by_id.values()), outcomes  # once each (the resend deduplicated)
        for client in CLIENTS:  # a forward or a put-back releases the group early (README): an older
            first, last = by_id[f"{client}-0"][0], by_id[f"{client}-1"][0]  # command may be superseded
            assert last["success"] is True, outcomes
            assert first["success"] is True or "a newer command" in first["error"], outcomes
        dead = sqs.receive_message(QueueUrl=fifo_queues["dlq"], MaxNumberOfMessages=10).get("Messages", [])
        assert [m["Body"] for m in dead] == ["not json"]
        for command_id in sent:
            assert len(commits_for(site_remote, command_id)) <= 1
        # An interrupt through the interrupt queue (standard: never held behind the running command).
        send(sqs, fifo_queues, "acme-slow", "Slow\n@fake sleep 30", "acme")
        agent_started(sqs, fifo_queues["output"], "acme-slow")  # it runs somewhere now: something to stop
        stop = {"type": "interrupt", "projectId": "acme", "userId": "u1", "reason": "stop please"}
        sqs.send_message(QueueUrl=fifo_queues["interrupts"], MessageBody=json.dumps(stop))
        (slow,) = responses(sqs, fifo_queues["output"], want=1, timeout=60)
        assert (
            slow["commandId"] == "acme-slow" and slow["errorCode"] == "INTERRUPTED" and "stop please" in slow["error"]
        )
        wait_until_settled(sqs, fifo_queues, supervisors, workspace_root)
    finally:
        for process in supervisors:
            process.signal_stop()
        codes = [process.stop() for process in supervisors]  # every one stopped, then judged
        assert codes == [0, 0]
