"""FIFO queues (issue 19): every send we make to a FIFO queue carries a group (the workspace) and a
deduplication id (what is sent), and is never delayed; inboxes of a FIFO input are FIFO. moto in-process."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from supervisor.contract.config import load_config
from supervisor.queues import Queues, Received, deduplication_id, message_group
from supervisor.sharing.inboxes import create_inbox, forward, inbox_name

COMMAND = {"commandId": "c1", "clientId": "acme", "userId": "u1", "chatThreadId": "t1", "instruction": "x"}


@pytest.fixture
def sqs(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("sqs", region_name="us-west-2")


def fifo(sqs, name: str) -> str:
    return sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]


def queues_on(sqs, tmp_path, **urls: str) -> Queues:
    env = {"WORKSPACE_PATH": str(tmp_path), "REPO_URL": "https://git.example/{clientId}/site.git", **urls}
    return Queues(load_config(env), sqs)


def test_groups_and_deduplication_ids():
    assert message_group(json.dumps(COMMAND), "https://git.example/{clientId}/site.git") == "acme/u1/site"
    assert message_group(json.dumps({**COMMAND, "projectId": "beta"})).startswith("beta/u1")
    assert message_group('{"sessionId": "s"}') == "s" and message_group("not json") == "other"
    interrupt = {"type": "interrupt", "projectId": "acme", "userId": "u1"}  # never behind the command it stops
    assert message_group(json.dumps(interrupt), "https://git.example/{clientId}/site.git") == "interrupt/acme/u1/site"
    assert deduplication_id("a", "b") == deduplication_id("a", "b") != deduplication_id("a", "c")


def test_responses_dead_letters_and_copies_reach_fifo_queues_and_a_resend_is_deduplicated(sqs, tmp_path):
    input_url, output, dlq = fifo(sqs, "in.fifo"), fifo(sqs, "out.fifo"), fifo(sqs, "dlq.fifo")
    queues = queues_on(sqs, tmp_path, INPUT_QUEUE_URL=input_url, OUTPUT_QUEUE_URL=output, DLQ_URL=dlq)
    body = {"type": "response", "commandId": "c1", "sessionId": "t1", "success": True}
    assert queues.respond_many([body, body]) == [None, None]  # the second: a resend, deduplicated
    assert len(sqs.receive_message(QueueUrl=output, MaxNumberOfMessages=10).get("Messages", [])) == 1
    message = Received("m-1", "r", json.dumps(COMMAND), 1)
    assert queues.dead_letter_many([(message, "bad")]) == [None]
    queues.send_to("", json.dumps(COMMAND), delay=10, deduplication="requeue m-1")  # FIFO: no delay per message
    queues.send_to("", json.dumps(COMMAND), delay=10, deduplication="requeue m-1")  # the same again: dropped
    got = sqs.receive_message(QueueUrl=input_url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert len(got) == 1 and got[0]["Attributes"]["MessageGroupId"] == "acme/u1/site"


def test_a_fifo_inputs_inbox_is_fifo_and_takes_forwards(sqs, tmp_path):
    input_url = fifo(sqs, "edit-input.fifo")
    queues = queues_on(sqs, tmp_path, INPUT_QUEUE_URL=input_url)
    assert inbox_name(input_url, "owner-a").endswith(".fifo") and "-inbox-" in inbox_name(input_url, "owner-a")
    inbox = create_inbox(queues, input_url, "owner-a", visibility_seconds=30)
    attributes = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["All"])["Attributes"]
    assert attributes["FifoQueue"] == "true"
    message = Received("m-1", "r", json.dumps(COMMAND), 1)
    assert forward(queues, inbox, message, "owner-b") and forward(queues, inbox, message, "owner-b")
    assert len(sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10)["Messages"]) == 1  # one forward
