"""A preview per chat thread (PREVIEW_MODE=thread), end to end through real workers, real git and moto:
two threads of one client each see their own change at their own URL (served by the local run's preview
server), a third command uploads only what changed, a shared-mode deploy afterwards leaves the threads'
folders alone, and bin/previews prune removes an old thread's folder and nothing else."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import pytest
from fake_agent_marker import marker
from helpers import QUICK_BUILD, ROOT, backdate_objects, message, prewarm_checkout, run_worker

from supervisor.contract.previews import thread_label, thread_prefix
from supervisor.local.__main__ import fetch, start_preview_server
from supervisor.local.stack import demo_remote

pytestmark = pytest.mark.e2e

A, B = "Chat-A", "chat-b"  # A's id is no DNS label (upper case): it gets a slug and a hash


def objects(s3: Any, bucket: str, prefix: str) -> dict[str, tuple[str, Any]]:
    """Key → (ETag, LastModified) of everything under prefix: what a later deploy may not have touched."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = (item["ETag"], item["LastModified"])
    return found


def test_each_thread_has_its_own_preview_and_a_shared_deploy_or_a_prune_touches_no_other(
    base_env, prewarm, s3, make_bucket
):
    prewarm()
    bucket = make_bucket("acme")
    server = start_preview_server(s3, bucket)
    port = server.server_address[1]
    env = {
        **base_env,
        "PREVIEW_MODE": "thread",
        "THREAD_PREVIEW_URL": f"http://{{threadId}}.localhost:{port}/",
        "DEPLOY_STRATEGY": "hash",  # its details count what was uploaded and skipped
        "BUILD_COMMAND": QUICK_BUILD,  # the subject is where builds go, not how Astro builds
    }
    try:
        one = run_worker(message(commandId="a-1", chatThreadId=A, instruction="Mark the home page for A"), env)
        two = run_worker(message(commandId="b-1", chatThreadId=B, instruction="Mark the home page for B"), env)
        for response, thread in ((one, A), (two, B)):
            assert response["success"] is True, response
            assert response["previewUrl"] == f"http://{thread_label(thread)}.localhost:{port}/"
            assert response["deploy"]["prefix"] == thread_prefix(thread)
            assert (response["deploy"]["uploaded"], response["deploy"]["deleted"]) == (2, 0)  # home and about
        assert thread_label(A) != A.lower()
        # Each thread's URL shows its own change and not the other's.
        for response, mine, other in ((one, "A", "B"), (two, "B", "A")):
            status, page = fetch(response["previewUrl"])
            assert status == 200
            assert marker(f"Mark the home page for {mine}").encode() in page
            assert marker(f"Mark the home page for {other}").encode() not in page
        b_before = objects(s3, bucket, thread_prefix(B))

        # A third command on A changes one page: only that page goes up, in A's folder only.
        about = (
            "---\\nimport Base from '../layouts/Base.astro';\\n---\\n<Base title='About'><p>About A, again</p></Base>"
        )
        three = run_worker(
            message(commandId="a-2", chatThreadId=A, instruction=f"@fake write src/pages/about.astro {about}"), env
        )
        assert three["success"] is True, three
        assert {k: three["deploy"][k] for k in ("uploaded", "skipped", "deleted")} == {
            "uploaded": 1,
            "skipped": 1,
            "deleted": 0,
        }
        assert b"About A, again" in fetch(f"{one['previewUrl']}about/")[1]
        assert b"About A, again" not in fetch(f"{two['previewUrl']}about")[1]
        assert objects(s3, bucket, thread_prefix(B)) == b_before

        # A shared-mode deploy afterwards cleans the shared site and leaves every thread's folder alone.
        s3.put_object(Bucket=bucket, Key="old/index.html", Body=b"stale")
        threads_before = objects(s3, bucket, "threads/")
        shared_env = {**env, "PREVIEW_MODE": "shared"}
        four = run_worker(message(commandId="b-2", chatThreadId=B, instruction="Mark B again"), shared_env)
        assert four["success"] is True and four["previewUrl"] == "http://preview.test/acme", four
        assert "prefix" not in four["deploy"] and four["deploy"]["deleted"] == 1  # old/index.html
        assert objects(s3, bucket, "threads/") == threads_before
        status, page = fetch(f"http://127.0.0.1:{port}/")  # the shared site, served by its own host
        assert status == 200 and marker("Mark B again").encode() in page

        # bin/previews prune: A is old, B is not; the shared site is never a candidate.
        assert backdate_objects(bucket, thread_prefix(A), 10) == 2
        shared_before = {k: v for k, v in objects(s3, bucket, "").items() if not k.startswith("threads/")}
        pruned = subprocess.run(
            [str(ROOT / "bin" / "previews"), "prune", "--client", "acme", "--older-than", "5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert pruned.returncode == 0, pruned.stderr
        assert pruned.stdout.splitlines()[0].startswith(f"pruned {thread_prefix(A)}  2 objects")
        assert objects(s3, bucket, thread_prefix(A)) == {}
        assert objects(s3, bucket, thread_prefix(B)) == b_before
        assert {k: v for k, v in objects(s3, bucket, "").items() if not k.startswith("threads/")} == shared_before
        assert fetch(one["previewUrl"])[0] == 404 and fetch(two["previewUrl"])[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_the_local_run_prints_and_serves_the_thread_preview(tmp_path, installed_site):
    """`bin/run-local --preview-mode thread`: the response's link is the thread's `{label}.localhost` one, and
    the local preview server answers it from the thread's folder (the shared site was never deployed).
    The checkout is pre-warmed from the session's installed site, so the run pays for no `npm ci`."""
    state = tmp_path / "state"
    prewarm_checkout(state / "workspace", demo_remote(state), installed_site, "demo", "you")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AGENT_", "INPUT_", "OUTPUT_", "MOTO_"))}
    options = ["--once", "--preview-mode", "thread", "--thread", "Chat 9", "--state", str(state)]
    completed = subprocess.run(
        [sys.executable, "-m", "supervisor.local", *options, "Make the header green"],
        cwd=ROOT,
        env={**env, "PREVIEW_MODE": "shared"},  # the option wins over the variable
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    label = thread_label("Chat 9")
    out = completed.stdout
    assert f"(this one {label})" in out and '"success": true' in out
    link = re.search(rf"preview: (http://{label}\.localhost:\d+/)  \(GET → 200, \d+ bytes", out)
    assert link, out[-3000:]
    assert f'"previewUrl": "{link[1]}"' in out
