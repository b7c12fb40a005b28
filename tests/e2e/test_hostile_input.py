"""Hostile ids and instructions are data, never commands or paths: nothing outside the workspace changes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from helpers import git_out, message, run_worker

pytestmark = pytest.mark.e2e


def tree_state(root: Path, skip: set[Path]) -> dict[str, tuple[int, int]]:
    state = {}
    for path in root.rglob("*"):
        if any(path == s or s in path.parents for s in skip):
            continue
        stat = path.lstat()
        state[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return state


def test_hostile_ids_and_instruction_change_nothing_outside_the_workspace(
    base_env, prewarm, make_bucket, site_remote, workspace_root, tmp_path
):
    checkout = prewarm()
    make_bucket("acme")
    canary = tmp_path / "pwned"
    # Ids are at most 128 characters, so their canaries are relative: looked for everywhere below.
    thread = "../../$(touch pwned-thread)"
    command_id = "-rf; touch ../pwned-command `touch pwned-tick`"
    session = "会話 🎉 $HOME"
    instruction = (
        f"-rf / $(touch {canary}-1) `touch {canary}-2`; touch {canary}-3 | cat /etc/passwd && ../../..\n"
        "Überschrift auf Blau ändern — 日本語 🎉\n" + "very long line " * 4000
    )
    outside_before = tree_state(tmp_path, skip={workspace_root, site_remote, tmp_path / "agent-runs.jsonl"})

    response = run_worker(
        message(instruction=instruction, commandId=command_id, chatThreadId=thread, sessionId=session), base_env
    )

    assert response["success"] is True, response["error"]
    assert not list(tmp_path.rglob("pwned*")) and not list(Path.cwd().glob("pwned*"))
    assert tree_state(tmp_path, skip={workspace_root, site_remote, tmp_path / "agent-runs.jsonl"}) == outside_before
    # Only the one checkout exists under the workspace root, and the agent's state for it beside the checkouts.
    checkouts = [p.relative_to(workspace_root).as_posix() for p in workspace_root.glob("[!.]*/*/[!.]*")]
    assert checkouts == ["acme/u1/site"]
    threads = [p.relative_to(workspace_root).as_posix() for p in workspace_root.glob(".agent/*/*/*/sessions/*")]
    assert threads == [f".agent/acme/u1/site/sessions/{response['branch']}.json"]

    branch = response["branch"]
    assert branch == f"thread-touch-pwned-thread-{hashlib.sha256(thread.encode()).hexdigest()[:8]}"
    body = git_out(site_remote, "log", "-1", "--format=%B", branch)
    assert f"Command-Id: {command_id}" in body and f"Session-Id: {session}" in body
    assert instruction.strip("\n") in body
    recorded = (checkout / "notes" / "instructions.txt").read_text(encoding="utf-8")
    assert instruction in recorded  # reached the agent intact (with a leading space: never an option)
