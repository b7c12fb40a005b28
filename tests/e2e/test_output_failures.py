"""A response that cannot be sent never loses the command: its message stays, the supervisor keeps running."""

from __future__ import annotations

import json
import time

import pytest
from helpers import QUICK_BUILD, SupervisorProcess

pytestmark = pytest.mark.e2e


def test_an_unreachable_output_queue_keeps_the_message_and_the_supervisor(
    supervisor_env, queues, sqs, prewarm, make_bucket, tmp_path
):
    prewarm()
    make_bucket("acme")
    missing = queues["output"] + "-gone"  # a queue that does not exist: every send fails
    env = {**supervisor_env, "OUTPUT_QUEUE_URL": missing, "BUILD_COMMAND": QUICK_BUILD}
    supervisor = SupervisorProcess(env, tmp_path / "supervisor.log")
    try:
        body = {
            "instruction": "@fake no-change",
            "commandId": "cmd-1",
            "chatThreadId": "c",
            "clientId": "acme",
            "userId": "u1",
        }
        sqs.send_message(QueueUrl=queues["input"], MessageBody=json.dumps(body))
        deadline = time.monotonic() + 60
        while not any(line.get("event") == "response not sent; message kept" for line in supervisor.log_lines()):
            assert time.monotonic() < deadline, supervisor.log_path.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(1)
        assert supervisor.process.poll() is None  # still running
        attributes = sqs.get_queue_attributes(QueueUrl=queues["input"], AttributeNames=["All"])["Attributes"]
        waiting = int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )
        assert waiting == 1  # not deleted: it will be delivered again
    finally:
        assert supervisor.stop() == 0
