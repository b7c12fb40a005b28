"""Attachments end to end (issue 20): a photo in S3 reaches the checkout before the agent runs, the real
Claude Code CLI looks at it (its Read tool sends the image to the scripted API), and it is committed,
pushed and live; a bad one ends the command before the agent with nothing left behind."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from helpers import QUICK_BUILD, agent_runs, commits_for, git, git_out, message, run_worker, tiny_png
from scripted_api import Text, ToolCall, steps

pytestmark = pytest.mark.e2e


@pytest.fixture
def uploads(s3, bucket_prefix):
    """The bucket people's attachments are stored in (ATTACHMENTS_BUCKET)."""
    name = f"{bucket_prefix}-uploads"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    return name


def blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def tree_blobs(remote, branch: str) -> dict[str, str]:
    """path → blob sha of every file on the remote's branch."""
    listing = git_out(remote, "ls-tree", "-r", branch).splitlines()
    return {line.split("\t", 1)[1]: line.split()[2] for line in listing}


def image_results(body: dict) -> list[dict]:
    """The image blocks of the tool results in one request the API received."""
    found = []
    for item in body.get("messages", []):
        content = item.get("content") if isinstance(item.get("content"), list) else []
        for block in content:
            if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                found += [part for part in block["content"] if part.get("type") == "image"]
    return found


def test_the_agent_looks_at_an_attached_photo_which_is_committed_and_live(
    real_agent_env, prewarm, make_bucket, uploads, s3, site_remote, scripted_api
):
    preview = make_bucket("acme")
    prewarm()
    png = tiny_png()
    s3.put_object(Bucket=uploads, Key="chat/acme/IMG_0001.PNG", Body=png)

    def look(conversation):
        placed = re.search(r"- (public/uploads/\S+) \(on the site:", conversation.instruction)
        assert placed, conversation.instruction
        return ToolCall("Read", {"file_path": conversation.path(placed.group(1))})

    scripted_api.when("Put my photo", steps(look, Text("It is a small red square; it is ready to use.")))
    env = {**real_agent_env, "ATTACHMENTS_BUCKET": uploads}  # the real `npm run build`: Astro copies public/
    body = message(
        instruction="Put my photo on the home page",
        commandId="img-1",
        attachments=[{"key": "chat/acme/IMG_0001.PNG", "name": "IMG_0001.PNG", "contentType": "image/png"}],
    )
    response = run_worker(body, env)

    assert response["success"] is True, response["error"]
    path = "public/uploads/img-1/IMG_0001.png"
    assert response["attachments"] == [
        {
            "name": "IMG_0001.png",
            "path": path,
            "sitePath": "/uploads/img-1/IMG_0001.png",
            "bytes": len(png),
            "contentType": "image/png",
            "sentAs": "IMG_0001.PNG",
        }
    ]
    # The prompt named the file; the request after the Read carried the image itself.
    first, *later = scripted_api.conversations("Put my photo")
    assert f"- {path} (on the site: /uploads/img-1/IMG_0001.png; image/png" in first.instruction
    images = [image for conversation in later for image in image_results(conversation.body)]
    assert images and images[0]["source"]["media_type"] == "image/png", [c.body["messages"][-1] for c in later]
    # Committed with the command (the instruction in the commit is the sender's, without the note) and pushed.
    assert response["filesChanged"] == [path]
    assert tree_blobs(site_remote, "thread-chat-1")[path] == blob_sha(png)
    assert git_out(site_remote, "log", "-1", "--format=%B", "thread-chat-1").count("public/uploads") == 1
    # Live: the build copied it and the deploy uploaded it.
    assert s3.get_object(Bucket=preview, Key="uploads/img-1/IMG_0001.png")["Body"].read() == png


def test_a_bad_attachment_ends_the_command_before_the_agent_and_a_redelivery_fetches_nothing(
    base_env, prewarm, make_bucket, uploads, s3, site_remote, agent_log
):
    make_bucket("acme")
    checkout = prewarm()
    env = {**base_env, "BUILD_COMMAND": QUICK_BUILD, "ATTACHMENTS_BUCKET": uploads}
    s3.put_object(Bucket=uploads, Key="good.png", Body=tiny_png())
    s3.put_object(Bucket=uploads, Key="page.png", Body=b"<!DOCTYPE html><html><script>alert(1)</script></html>")

    bad = message(instruction="Use both", commandId="bad-1", attachments=[{"key": "good.png"}, {"key": "page.png"}])
    refused = run_worker(bad, env)
    assert refused["success"] is False and refused["errorCode"] == "INVALID_ATTACHMENT"
    assert refused["error"].startswith('attachments[1] ("page.png"): its bytes are not an image we accept (HTML)')
    statuses = {step["name"]: step["status"] for step in refused["steps"]}
    assert statuses == {s: "skipped" for s in ("commit", "build", "deploy", "push")} | {
        "workspace": "ok",
        "agent": "failed",
    }
    assert agent_runs(agent_log, "Use both") == 0 and "attachments" not in refused
    assert git_out(checkout, "status", "--porcelain") == "" and not (checkout / "public" / "uploads").exists()
    assert commits_for(site_remote, "bad-1") == []

    good = message(instruction="Use the photo", commandId="good-1", attachments=[{"key": "good.png"}])
    placed = run_worker(good, env)
    assert placed["success"] is True, placed["error"]
    assert [item["path"] for item in placed["attachments"]] == ["public/uploads/good-1/good.png"]
    prompt = json.loads(agent_log.read_text().splitlines()[-1])["argv"]
    prompt = prompt[prompt.index("-p") + 1]
    assert prompt.startswith("Use the photo\n\n") and "- public/uploads/good-1/good.png (on the site:" in prompt
    assert "public/uploads/good-1/good.png" in tree_blobs(site_remote, "thread-chat-1")

    # Redelivered after it was committed: the agent is not run again, and nothing is fetched again.
    s3.delete_object(Bucket=uploads, Key="good.png")
    again = run_worker(good, env)
    assert again["success"] is True, again["error"]
    assert [s["status"] for s in again["steps"] if s["name"] == "agent"] == ["skipped"]
    assert "attachments" not in again and agent_runs(agent_log, prompt) == 1
    git(checkout, "status")  # the checkout is still a working repository
