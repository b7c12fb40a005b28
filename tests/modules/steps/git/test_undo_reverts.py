"""`/undo` (issue 20) on real git: the thread's last command is taken back, then the one before; a WIP commit
of an interrupted command too; nothing to take back or a conflicting revert changes nothing."""

from __future__ import annotations

import pytest
from git_harness import Harness, harness_config, plain_remote
from helpers import git, git_out

from steps import commit, undo, workspace
from steps.base import StepContext, StepError
from supervisor.contract.actions import ACTION_UNDO
from supervisor.contract.codes import ErrorCode


@pytest.fixture
def harness(tmp_path):
    return Harness(harness_config(tmp_path / "workspace"), plain_remote(tmp_path))


def edit(harness: Harness, thread: str, instruction: str, path: str, text: str) -> StepContext:
    ctx = harness.start(thread, instruction)
    target = harness.checkout / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    harness.finish(ctx)
    return ctx


def take_back(harness: Harness, thread: str = "t1") -> StepContext:
    """An undo command through its agent step (the revert) and the commit step, as the pipeline runs them."""
    ctx = harness.start(thread, "/undo")
    assert ctx.command.action == ACTION_UNDO
    result = undo.run(ctx)
    assert result.status == "ok"
    harness.finish(ctx)
    return ctx


def shared(harness: Harness) -> str:
    return (harness.checkout / "src" / "shared.txt").read_text()


def test_two_undos_take_back_the_last_command_then_the_one_before(harness):
    first = edit(harness, "t1", "Make it red", "src/shared.txt", "red\n")
    second = edit(harness, "t1", "Add a page", "src/page.txt", "page\n")

    one = take_back(harness)
    assert one.taken_back is not None and one.taken_back.command_id == second.command.command_id
    assert one.files_changed == ["src/page.txt"]
    assert not (harness.checkout / "src" / "page.txt").exists() and shared(harness) == "red\n"
    message = git_out(harness.remote, "log", "-1", "--format=%B", "thread-t1")
    assert message.startswith(f"Undo command {second.command.command_id}\n")
    assert f"Undoes-Command-Id: {second.command.command_id}" in message

    two = take_back(harness)
    assert two.taken_back is not None and two.taken_back.command_id == first.command.command_id
    assert shared(harness) == "line one\nline two\n"

    ctx = harness.start("t1", "/undo")
    head = git_out(harness.checkout, "rev-parse", "HEAD")
    with pytest.raises(StepError) as refused:
        undo.run(ctx)
    assert refused.value.error_code == ErrorCode.NOTHING_TO_UNDO and refused.value.ends_command
    assert git_out(harness.checkout, "rev-parse", "HEAD") == head
    assert git_out(harness.checkout, "status", "--porcelain") == ""


def test_an_interrupted_commands_wip_commit_is_taken_back(harness):
    ctx = harness.start("t1", "Rewrite the intro")
    (harness.checkout / "src" / "shared.txt").write_text("half done\n")
    harness.interrupt(ctx)
    assert git_out(harness.remote, "log", "-1", "--format=%s", "thread-t1") == "WIP: Rewrite the intro"

    taken = take_back(harness)
    assert taken.taken_back is not None and taken.taken_back.command_id == ctx.command.command_id
    assert shared(harness) == "line one\nline two\n"


def test_every_commit_of_the_command_is_taken_back(harness):
    """An interrupted command's WIP commit, then its redelivery's own commit: both are reverted by one undo."""
    ctx = harness.start("t1", "Two parts")
    (harness.checkout / "src" / "a.txt").write_text("a\n")
    harness.interrupt(ctx)
    again = harness.context("t1", "Two parts")
    again = StepContext(again.config, ctx.command, again.checkout, again.git)  # the same command, delivered again
    workspace.run(again)
    (harness.checkout / "src" / "b.txt").write_text("b\n")
    harness.finish(again)

    taken = take_back(harness)
    assert taken.taken_back is not None and len(taken.taken_back.commits) == 2
    assert sorted(taken.files_changed) == ["src/a.txt", "src/b.txt"]
    assert not (harness.checkout / "src" / "a.txt").exists() and not (harness.checkout / "src" / "b.txt").exists()


def test_a_conflicting_revert_changes_nothing(harness):
    edit(harness, "t1", "Make it red", "src/shared.txt", "red\n")
    # Someone else's commit on the thread's branch (no trailers of ours) changes the same line.
    ctx = harness.start("t1", "hand edit")
    (harness.checkout / "src" / "shared.txt").write_text("blue\n")
    git(harness.checkout, "commit", "--quiet", "-am", "A hand edit")
    harness.end_without_commit(ctx)
    head = git_out(harness.checkout, "rev-parse", "HEAD")

    ctx = harness.start("t1", "/undo")
    with pytest.raises(StepError) as refused:
        undo.run(ctx)
    assert refused.value.error_code == ErrorCode.UNDO_CONFLICT and refused.value.ends_command
    assert "cannot be taken back: later changes touch the same lines (CONFLICT" in str(refused.value)
    assert git_out(harness.checkout, "rev-parse", "HEAD") == head
    assert git_out(harness.checkout, "status", "--porcelain") == ""
    assert shared(harness) == "blue\n"
    assert commit.run(ctx).status == "skipped"  # nothing was left for a commit


def test_commands_already_on_the_default_branch_and_other_threads_are_not_taken_back(harness):
    edit(harness, "t2", "Other thread", "src/other.txt", "other\n")
    edit(harness, "t1", "Merged already", "src/merged.txt", "merged\n")
    git(harness.remote, "update-ref", "refs/heads/main", git_out(harness.remote, "rev-parse", "thread-t1"))
    mine = edit(harness, "t1", "Mine", "src/mine.txt", "mine\n")

    taken = take_back(harness)
    assert taken.taken_back is not None and taken.taken_back.command_id == mine.command.command_id
    ctx = harness.start("t1", "/undo")
    with pytest.raises(StepError) as refused:
        undo.run(ctx)
    assert refused.value.error_code == ErrorCode.NOTHING_TO_UNDO
    assert (harness.checkout / "src" / "merged.txt").exists()
