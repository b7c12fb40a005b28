"""A task-shape command's requested `branch` (issue 19): worked on and pushed like a thread's own branch,
never the repository's default branch, whatever the remote calls it."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from git_harness import Harness, harness_config, plain_remote
from helpers import git, git_out

from steps import workspace
from steps.base import StepContext, StepError
from steps.git.repo import Git
from supervisor.contract.command import parse_command


@pytest.fixture
def harness(tmp_path):
    return Harness(harness_config(tmp_path / "workspace"), plain_remote(tmp_path))


def task_context(harness: Harness, branch: str) -> StepContext:
    body = {"messageId": "m-1", "text": "Edit", "threadId": "t1", "projectId": "acme", "userId": "u1", "branch": branch}
    command = parse_command(json.dumps(body), str(harness.remote))
    return StepContext(harness.config, command, harness.checkout, Git(harness.checkout, harness.config))


def test_a_requested_branch_is_worked_on_and_pushed(harness):
    ctx = task_context(harness, "site-edits/hero")
    workspace.run(ctx)
    (harness.checkout / "src" / "hero.txt").write_text("hero\n")
    harness.finish(ctx)
    assert git_out(harness.remote, "log", "-1", "--format=%s", "site-edits/hero").strip() != ""
    assert "hero.txt" in git_out(harness.remote, "ls-tree", "-r", "--name-only", "site-edits/hero")
    assert "hero.txt" not in git_out(harness.remote, "ls-tree", "-r", "--name-only", "main")


def test_the_remotes_own_default_branch_is_refused_whatever_its_name(harness):
    git(harness.remote, "branch", "-m", "main", "website")  # a default branch no list of names knows
    git(harness.remote, "symbolic-ref", "HEAD", "refs/heads/website")
    ctx = task_context(harness, "website")
    with pytest.raises(StepError) as refused:
        workspace.run(ctx)
    assert refused.value.error_code == "INVALID_MESSAGE" and "default branch" in str(refused.value)
    thread = replace(ctx, command=replace(ctx.command, branch="thread-t1"))
    workspace.run(thread)  # the thread's own branch is fine
