"""Delivery (supervisor/delivery.py) and the batched SQS calls it makes (supervisor/queues.py)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from supervisor.contract.config import load_config
from supervisor.delivery import Delivery
from supervisor.events import MessageReceived
from supervisor.loop import Supervisor
from supervisor.memory_queues import MemoryQueues
from supervisor.queues import MAX_MESSAGE_BYTES, Queues
from supervisor.visibility import VisibilityKeeper


class GatedQueues(MemoryQueues):
    """SQS that answers only once the gate opens, and records the size of every batched call."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.calls: list[tuple[str, int]] = []

    def respond_many(self, bodies: list[dict[str, Any]]) -> list[str | None]:
        self.gate.wait(10)
        self.calls.append(("respond", len(bodies)))
        return super().respond_many(bodies)

    def dead_letter_many(self, items: list[Any]) -> list[str | None]:
        self.calls.append(("dead_letter", len(items)))
        return super().dead_letter_many(items)

    def delete_many(self, messages: list[Any]) -> list[str | None]:
        self.calls.append(("delete", len(messages)))
        return super().delete_many(messages)


def test_the_loop_never_waits_for_sqs_and_a_flood_goes_out_in_batches(tmp_path):
    env = {
        "INPUT_QUEUE_URL": "http://memory/input",
        "OUTPUT_QUEUE_URL": "http://memory/output",
        "DLQ_URL": "http://memory/dlq",
        "WORKSPACE_PATH": str(tmp_path),
        "REPO_URL": "/srv/site.git",
    }
    queues = GatedQueues()
    supervisor = Supervisor(load_config(env), queues)  # type: ignore[arg-type]
    supervisor.delivery.start()
    for n in range(30):
        queues.send({"commandId": f"bad-{n}", "instruction": 42})  # invalid: answered, then dead-lettered
    received = queues.receive(max_messages=30, wait_seconds=0)
    for message in received:
        supervisor.dispatch(MessageReceived(message))
    # Every decision was taken while SQS answered nothing: the loop only queued the orders.
    assert queues.responses == [] and queues.dead_letters == [] and queues.calls == []
    queues.gate.set()
    assert supervisor.delivery.close(timeout=10)
    assert sorted(r["commandId"] for r in queues.responses) == sorted(f"bad-{n}" for n in range(30))
    assert len(queues.dead_letters) == 30 and queues.remaining() == []
    assert len(queues.calls) < 30 * 3  # one call per kind per round, not one per message


def test_a_response_that_cannot_be_sent_leaves_its_message_to_come_back():
    queues = MemoryQueues()
    queues.respond = lambda body: (_ for _ in ()).throw(RuntimeError("SQS down"))  # type: ignore[method-assign]
    leases = VisibilityKeeper(queues)  # type: ignore[arg-type]
    delivery = Delivery(queues, leases)  # type: ignore[arg-type]
    queues.send({"n": 1})
    (message,) = queues.receive(wait_seconds=0)
    leases.hold(message)
    sent = []
    delivery.answer(message, {"type": "response", "commandId": "c1"}, on_sent=lambda: sent.append(1))
    assert sent == [] and queues.remaining() == ["m-1"] and leases.held() == []  # kept, retried later


def test_the_lease_keeper_renews_every_held_message_in_one_round_and_drops_gone_ones():
    queues = MemoryQueues()
    leases = VisibilityKeeper(queues, visibility_seconds=60)  # type: ignore[arg-type]
    for n in range(25):
        queues.send({"n": n})
    messages = queues.receive(max_messages=25, wait_seconds=0)
    for message in messages:
        leases.hold(message)
    queues.delete(messages[0])
    leases.renew()
    assert len(leases.held()) == 24 and len(queues.in_flight()) == 24


@pytest.fixture
def sqs_queues(sqs, aws_env) -> Queues:
    names = ("input", "output", "dlq")
    urls = {name: sqs.create_queue(QueueName=f"delivery-{name}-{id(sqs)}")["QueueUrl"] for name in names}
    env = {
        **aws_env,
        "INPUT_QUEUE_URL": urls["input"],
        "OUTPUT_QUEUE_URL": urls["output"],
        "DLQ_URL": urls["dlq"],
        "WORKSPACE_PATH": "/tmp/unused",
        "REPO_URL": "/srv/site.git",
    }
    yield Queues(load_config(env), sqs)
    for url in urls.values():
        sqs.delete_queue(QueueUrl=url)


def test_batched_calls_on_sqs_split_by_count_and_size_and_fail_entry_by_entry(sqs_queues, sqs):
    bodies = [{"type": "progress", "commandId": f"c{n}", "text": "x" * 50_000 if n < 12 else ""} for n in range(25)]
    assert sqs_queues.respond_many(bodies) == [None] * 25  # 12 large ones do not fit ten to a request
    for n in range(12):
        sqs.send_message(QueueUrl=sqs_queues.config.input_queue_url, MessageBody=f"bad {n}")
    # At the size limit: real SQS counts attributes in it, so its copy goes without ours (moto counts the body only).
    big = "y" * (MAX_MESSAGE_BYTES - 20)
    sqs.send_message(QueueUrl=sqs_queues.config.input_queue_url, MessageBody=big)
    received = []
    while len(received) < 13:
        received += sqs_queues.receive(max_messages=10, wait_seconds=1)
    copied = sqs_queues.dead_letter_many([(m, "not JSON") for m in received])
    assert copied == [None] * 13
    deleted = sqs_queues.delete_many(received + received[:1])  # the last: deleted already
    assert deleted[:13] == [None] * 13
    errors = sqs_queues.extend_many([(m, 30) for m in received[:2]])
    assert all(e is not None for e in errors)  # deleted messages: SQS refuses each, nothing raised


def test_an_unreachable_sqs_fails_each_entry_without_raising(tmp_path):
    env = {
        "INPUT_QUEUE_URL": "http://127.0.0.1:9/input",
        "OUTPUT_QUEUE_URL": "http://127.0.0.1:9/output",
        "WORKSPACE_PATH": str(tmp_path),
        "REPO_URL": "/srv/site.git",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_REGION": "us-west-2",
    }
    config = load_config(env)
    import boto3
    from botocore.config import Config as BotoConfig

    client = boto3.client(
        "sqs",
        region_name="us-west-2",
        endpoint_url="http://127.0.0.1:9",
        config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=1),
    )
    errors = Queues(config, client).respond_many([{"type": "progress", "n": n} for n in range(12)])
    assert len(errors) == 12 and all(errors)


def test_an_expired_receipt_is_recognised_in_what_a_batch_call_reports():
    from supervisor.visibility import receipt_is_gone

    reported = (
        "InvalidParameterValue: Value x for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."
    )
    assert receipt_is_gone(reported) and receipt_is_gone("ReceiptHandleIsInvalid: gone")
    assert not receipt_is_gone("ExpiredToken: The security token included in the request is expired")
