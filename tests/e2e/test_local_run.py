"""README command 1 keeps working: the local run completes instructions with the scripted agent, an
attachment and /undo included, directly or through a local state machine, and leaves nothing running."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import ROOT, commits_for, git_out, prewarm_checkout, tiny_png

from supervisor.local.stack import demo_remote

pytestmark = pytest.mark.e2e


def run_local(state: object, *options: str, instructions: tuple[str, ...] = ("Make the header green",)):
    """`bin/run-local --once` on a state folder of its own, on a clean environment (no AWS, no agent)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AGENT_", "INPUT_", "OUTPUT_", "MOTO_"))}
    env["LOCAL_RUN_TEST_MARK"] = str(state)  # inherited by everything the run starts
    completed = subprocess.run(
        [sys.executable, "-m", "supervisor.local", "--once", *options, "--state", str(state), *instructions],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed


def prewarmed_state(tmp_path: Path, installed_site: Path) -> Path:
    """A state folder whose checkout is pre-warmed from the session's installed site: no `npm ci`."""
    state = tmp_path / "state"
    prewarm_checkout(state / "workspace", demo_remote(state), installed_site, "demo", "you")
    return state


def printed_responses(out: str) -> list[dict[str, Any]]:
    """Each response the run printed (its JSON, without the steps)."""
    return [json.loads(block) for block in re.findall(r"^response:\n(\{.*?^\})$", out, re.MULTILINE | re.DOTALL)]


def test_local_run_attaches_a_photo_then_undoes_it_and_leaves_nothing_running(tmp_path, installed_site):
    """`bin/run-local --once --attach photo.png "Make the header green" /undo`: the photo goes into the local
    attachments bucket and with the first instruction; the worker places and commits it, the scripted demo
    agent puts it on the home page, and the preview serves it. /undo then takes the command back: the branch
    holds the site as it was, the preview no longer serves the photo and the page shrinks back. The
    checkout is pre-warmed from the session's installed site (no `npm ci`)."""
    state = prewarmed_state(tmp_path, installed_site)
    remote = demo_remote(state)
    photo, png = tmp_path / "photo.png", tiny_png()
    photo.write_bytes(png)
    before = {p.pid for p in psutil.process_iter()}
    completed = run_local(state, "--attach", str(photo), instructions=("Make the header green", "/undo"))
    out = completed.stdout
    assert "SCRIPTED DEMO AGENT" in out
    sent = re.findall(r"^sent (local-[0-9a-f]{8}): '([^']*)'", out, re.MULTILINE)
    assert [text for _, text in sent] == ["Make the header green", "/undo"], out[-3000:]
    (change, _), (undo, _) = sent
    first, second = printed_responses(out)
    assert first["commandId"] == change and first["success"] is True, first
    upload = f"public/uploads/{change}/photo.png"
    assert [(item["path"], item["bytes"]) for item in first["attachments"]] == [(upload, len(png))]
    assert set(first["filesChanged"]) == {upload, "src/pages/index.astro", "src/styles/site.css"}
    served = (
        rf"attached:   {upload} → http://127\.0\.0\.1:\d+/uploads/{change}/photo\.png  \(GET → 200, {len(png)} bytes\)"
    )
    assert re.search(served, out), out[-3000:]
    # Committed with the command, byte for byte, and used by the page.
    ((commit, _),) = commits_for(remote, change)
    blob = hashlib.sha1(b"blob %d\0" % len(png) + png, usedforsecurity=False).hexdigest()
    assert git_out(remote, "rev-parse", f"{commit}:{upload}") == blob
    assert f'<img src="/uploads/{change}/photo.png"' in git_out(remote, "show", f"{commit}:src/pages/index.astro")
    assert "--header-color: #15803d;" in git_out(remote, "show", f"{commit}:src/styles/site.css")
    # /undo took that command back: built, deployed and pushed; the branch holds the site as it was.
    assert second["commandId"] == undo and second["success"] is True, second
    assert second["undone"]["commandId"] == change and second["undone"]["commits"] == [commit]
    assert second["deploySuccess"] and second["deploy"]["deleted"] >= 1  # the photo, at least
    ((undo_commit, _),) = commits_for(remote, undo)
    assert git_out(remote, "rev-parse", "thread-local-demo") == undo_commit
    assert git_out(remote, "rev-parse", "thread-local-demo^{tree}") == git_out(remote, "rev-parse", "main^{tree}")
    assert re.search(rf"taken back: {upload} → \S+  \(GET → 404", out), out[-3000:]
    pages = [int(size) for size in re.findall(r"^preview: \S+  \(GET → 200, (\d+) bytes", out, re.MULTILINE)]
    assert len(pages) == 2 and pages[1] < pages[0]  # the <img> is gone from the served page
    assert "warnings" not in first, first  # the sandbox wrapper, exiting, is not taken for a leftover
    assert _ours_still_running(before, state) == []


def _ours_still_running(before: set[int], state: object) -> list[psutil.Process]:
    """New processes of this run (they inherit its mark): other tests may run supervisors of their own
    at the same time (pytest -n)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if p.pid in before:
            continue
        try:
            if p.environ().get("LOCAL_RUN_TEST_MARK") == str(state):
                found.append(p)
        except psutil.Error:
            continue
    return found


def test_local_run_drives_an_instruction_through_a_local_state_machine(tmp_path, installed_site):
    """`bin/run-local --step-functions`: the orchestrated path (task token, heartbeats, callback) on moto."""
    state = prewarmed_state(tmp_path, installed_site)
    before = {p.pid for p in psutil.process_iter()}
    completed = run_local(state, "--step-functions")
    assert "state machine:" in completed.stdout and "execution SUCCEEDED" in completed.stdout
    assert '"messageId"' in completed.stdout and '"siteUrl"' in completed.stdout  # the anchor's names too
    css = git_out(demo_remote(state), "show", "thread-local-demo:src/styles/site.css")
    assert "--header-color: #15803d;" in css
    assert _ours_still_running(before, state) == []
