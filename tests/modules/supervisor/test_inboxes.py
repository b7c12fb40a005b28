"""Inboxes (supervisor/sharing/inboxes.py) and messages that come from one (supervisor/queues.py), on moto."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from supervisor.contract.config import load_config
from supervisor.queues import FIRST_SENT_ATTRIBUTE, Queues
from supervisor.sharing.inboxes import create_inbox, forward, inbox_name, remove_inbox


@pytest.fixture
def sqs(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # moto in-process, not the suite's server
    with mock_aws():
        yield boto3.client("sqs", region_name="us-west-2")


def test_the_name_fits_sqs_and_the_pattern_iam_grants():
    owner = "ip-10-0-1-23.us-west-2.compute.internal-7-ab12cd"
    long = inbox_name("https://sqs.us-west-2.amazonaws.com/1/" + "q" * 90, owner)
    assert long.startswith("q" * 40 + "-inbox-") and len(long) == 59
    short = inbox_name("http://h/1/edit-input", "a1")
    assert short.startswith("edit-input-inbox-") and short != inbox_name("http://h/1/edit-input", "a2")


def test_a_forwarded_command_is_received_from_the_inbox_and_settled_there(sqs, tmp_path):
    input_url = sqs.create_queue(QueueName="edit-input")["QueueUrl"]
    env = {"INPUT_QUEUE_URL": input_url, "WORKSPACE_PATH": str(tmp_path), "REPO_URL": "/srv/site.git"}
    queues = Queues(load_config(env), sqs)
    sqs.send_message(QueueUrl=input_url, MessageBody='{"commandId": "c1"}')
    (original,) = queues.receive(max_messages=1, wait_seconds=0)
    inbox = create_inbox(queues, input_url, "owner-b", visibility_seconds=30)
    assert forward(queues, inbox, original, owner="a") is True
    assert queues.delete_many([original]) == [None]  # the original goes only after the forward
    (forwarded,) = queues.receive(max_messages=1, wait_seconds=0, queue_url=inbox)
    assert forwarded.body == '{"commandId": "c1"}' and forwarded.queue_url == inbox
    assert forwarded.first_sent_ms == original.first_sent_ms > 0  # still known as sent when the original was
    assert queues.extend_many([(forwarded, 0)]) == [None]  # settled on its own queue, not the input queue
    (again,) = queues.receive(max_messages=1, wait_seconds=0, queue_url=inbox)
    assert remove_inbox(queues, inbox) is False  # it still holds a message: not removed
    assert queues.delete_many([again]) == [None]
    assert remove_inbox(queues, inbox) is True and remove_inbox(queues, inbox) is True  # gone; gone already
    assert forward(queues, inbox, original, owner="a") is False  # no inbox any more: the original is kept


def test_an_inbox_holding_a_delayed_message_is_not_removed(sqs, tmp_path):
    """A command put back on an inbox (Delivery.requeue) is delayed: invisible, yet not lost with the queue."""
    input_url = sqs.create_queue(QueueName="edit-input")["QueueUrl"]
    env = {"INPUT_QUEUE_URL": input_url, "WORKSPACE_PATH": str(tmp_path), "REPO_URL": "/srv/site.git"}
    queues = Queues(load_config(env), sqs)
    inbox = create_inbox(queues, input_url, "owner-b", visibility_seconds=30)
    queues.send_to(inbox, '{"commandId": "c1"}', delay=60)
    assert queues.depth(inbox) == 1 and remove_inbox(queues, inbox) is False


def test_a_copy_is_known_by_when_its_command_was_first_sent_and_a_forged_time_is_ignored(sqs, tmp_path):
    input_url = sqs.create_queue(QueueName="edit-input")["QueueUrl"]
    env = {"INPUT_QUEUE_URL": input_url, "WORKSPACE_PATH": str(tmp_path), "REPO_URL": "/srv/site.git"}
    queues = Queues(load_config(env), sqs)
    queues.send_to("", '{"commandId": "c1"}', attributes={FIRST_SENT_ATTRIBUTE: "1700000000000"})
    queues.send_to("", '{"commandId": "c2"}', attributes={FIRST_SENT_ATTRIBUTE: "99999999999999"})  # future
    queues.send_to("", '{"commandId": "c3"}', attributes={FIRST_SENT_ATTRIBUTE: "soon"})
    queues.send_to("", '{"commandId": "c4"}', attributes={FIRST_SENT_ATTRIBUTE: "9" * 5000})  # int() refuses it
    queues.send_to("", '{"commandId": "c5"}', attributes={FIRST_SENT_ATTRIBUTE: "\u00b2"})  # a digit, not ASCII
    received = {m.body: m for m in queues.receive(max_messages=10, wait_seconds=0)}
    assert received['{"commandId": "c1"}'].first_sent_ms == 1700000000000
    assert len(received) == 5
    for body in (
        '{"commandId": "c2"}',
        '{"commandId": "c3"}',
        '{"commandId": "c4"}',
        '{"commandId": "c5"}',
    ):  # its own SentTimestamp instead
        assert 1700000000000 < received[body].first_sent_ms < 99999999999999
    assert received['{"commandId": "c1"}'].resend_attributes() == {FIRST_SENT_ATTRIBUTE: "1700000000000"}
