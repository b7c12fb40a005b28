"""One instruction from an SQS message to a pushed commit and a live preview, in both upstream shapes."""

from __future__ import annotations

import json

import pytest
from helpers import SupervisorProcess, bucket_keys, drain, git_out

pytestmark = pytest.mark.e2e


@pytest.fixture
def supervisor(supervisor_env, tmp_path):
    process = SupervisorProcess(supervisor_env, tmp_path / "supervisor.log")
    yield process
    assert process.stop() == 0, process.log_path.read_text()[-3000:]


def test_both_upstream_shapes_reach_the_remote_and_the_bucket(supervisor, queues, sqs, s3, site_remote, make_bucket):
    acme, globex = make_bucket("acme"), make_bucket("globex")
    first = {
        "instruction": "Please make the header blue\nand keep the logo as it is.",
        "commandId": "cmd-first",
        "chatThreadId": "chat-42",
        "clientId": "acme",
        "userId": "amelia",
        "timestamp": 1763712000000,
        "unknownField": {"ignored": True},
    }
    later = {
        "type": "work",
        "instruction": "Can you add an about page?",
        "commandId": "cmd-later",
        "threadId": "thread-abc",
        "projectId": "globex",
        "userId": "bob",
        "sessionId": "session-9",
        "repoUrl": str(site_remote),
        "timestamp": "2026-11-21T10:00:00Z",
    }
    for body in (first, later):
        sqs.send_message(QueueUrl=queues["input"], MessageBody=json.dumps(body))

    responses = {r["commandId"]: r for r in drain(sqs, queues["output"], expect=2, timeout=180)}
    assert set(responses) == {"cmd-first", "cmd-later"}, supervisor.log_path.read_text()[-4000:]

    one, two = responses["cmd-first"], responses["cmd-later"]
    assert one["type"] == "response" and one["success"] is True, one
    assert one["sessionId"] == "chat-42" and one["chatThreadId"] == "chat-42"
    assert one["_attributes"] == {"commandId": "cmd-first", "sessionId": "chat-42"}
    assert one["branch"] == "thread-chat-42"
    assert one["previewUrl"] == "http://preview.test/acme"
    assert one["buildSuccess"] and one["deploySuccess"] and one["pushSuccess"]
    assert one["interrupted"] is False and one["error"] is None and one["errorCode"] is None
    assert sorted(one["filesChanged"]) == ["notes/instructions.txt", "src/pages/index.astro"]
    assert [s["name"] for s in one["steps"]] == ["workspace", "agent", "commit", "build", "deploy", "push"]
    assert all(s["status"] == "ok" and isinstance(s["durationMs"], int) for s in one["steps"])
    assert one["durationMs"] >= sum(s["durationMs"] for s in one["steps"]) - 5
    assert one["summary"].startswith("Edited 2 file(s)")

    assert two["success"] is True, two
    assert two["sessionId"] == "session-9" and two["chatThreadId"] == "thread-abc"
    assert two["branch"] == "thread-abc"  # no doubled prefix
    assert two["previewUrl"] == "http://preview.test/globex"

    # The branch on the bare remote carries the exact commit message.
    message = git_out(site_remote, "log", "-1", "--format=%B", "thread-chat-42")
    assert message == (
        "Make the header blue\n\n"
        "Please make the header blue\nand keep the logo as it is.\n\n"
        "Files changed:\n- notes/instructions.txt\n- src/pages/index.astro\n\n"
        "Session-Id: chat-42\nCommand-Id: cmd-first\nUser-Id: amelia"
    )
    assert git_out(site_remote, "rev-parse", "thread-chat-42") == one["commit"]
    assert git_out(site_remote, "log", "-1", "--format=%an <%ae>", "thread-chat-42") == (
        "Webordinary Editor <editor@webordinary.invalid>"
    )
    assert git_out(site_remote, "log", "-1", "--format=%s", "thread-abc") == "Add an about page"
    assert git_out(site_remote, "rev-parse", "thread-abc") == two["commit"]

    # The preview bucket holds the built page with the agent's change (its marker is in the HTML).
    from fake_agent_marker import marker

    home = bucket_keys(s3, acme)["index.html"].decode()
    assert marker(first["instruction"]) in home and "<h1>Amelia Stamps</h1>" in home
    assert marker(later["instruction"]) in bucket_keys(s3, globex)["index.html"].decode()

    # Both messages are gone from the input queue; nothing was dead-lettered.
    attributes = sqs.get_queue_attributes(QueueUrl=queues["input"], AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert drain(sqs, queues["dlq"], expect=1, timeout=1) == []

    # Every log line is JSON and names its command.
    worker_lines = [line for line in supervisor.log_lines() if line.get("process") == "worker"]
    assert worker_lines and all(line["commandId"] in ("cmd-first", "cmd-later") for line in worker_lines)
