"""Pushes that meet a moved or missing remote, checkouts left broken by a crash, and the operator scripts."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest
from git_harness import Harness, files_of, harness_config, plain_remote, stash_files
from helpers import GIT_ENV, ROOT, git, git_out, repository_env

from steps import workspace
from steps.base import StepError
from steps.git.checkout import switch_to_branch
from steps.git.layout import git_dir_for
from steps.git.ledger import Ledger


@pytest.fixture
def harness(tmp_path):
    return Harness(harness_config(tmp_path / "workspace"), plain_remote(tmp_path))


def someone_else_pushes(tmp_path, remote, branch: str, path: str, text: str) -> str:
    other = tmp_path / f"other-{uuid.uuid4().hex[:8]}"
    git(tmp_path, "clone", "--quiet", "--branch", branch, str(remote), str(other))
    (other / path).parent.mkdir(parents=True, exist_ok=True)
    (other / path).write_text(text)
    git(other, "add", "--all")
    git(other, "commit", "--quiet", "-m", f"Someone else changed {path}")
    git(other, "push", "--quiet", "origin", branch)
    return git_out(other, "rev-parse", "HEAD")


def edit_and_commit(harness, thread: str, path: str, text: str):
    ctx = harness.start(thread, f"Change {path}")
    (ctx.checkout / path).parent.mkdir(parents=True, exist_ok=True)
    (ctx.checkout / path).write_text(text)
    return ctx


def test_upstream_moved_without_conflict_is_rebased_and_pushed(harness, tmp_path):
    harness.finish(edit_and_commit(harness, "thread-a", "first.txt", "one\n"))
    theirs = someone_else_pushes(tmp_path, harness.remote, "thread-a", "theirs.txt", "theirs\n")
    ctx = harness.context("thread-a", "Change mine.txt")
    # The workspace step fetched before their push? Make ours diverge: commit on the stale local branch.
    switch_to_branch(ctx)
    (ctx.checkout / "mine.txt").write_text("mine\n")
    harness.finish(ctx)
    remote_files = files_of(harness.remote, "thread-a")
    assert {"first.txt", "theirs.txt", "mine.txt"} <= remote_files
    assert git_out(harness.remote, "merge-base", "--is-ancestor", theirs, "thread-a") == ""  # theirs kept
    assert git_out(harness.remote, "log", "-1", "--format=%s", "thread-a") == "Change mine.txt"
    assert ctx.commit == git_out(harness.remote, "rev-parse", "thread-a")  # the rebased commit is reported


def test_conflicting_rebase_pushes_our_work_to_a_conflict_branch(harness, tmp_path):
    harness.finish(edit_and_commit(harness, "thread-a", "src/shared.txt", "base\n"))
    someone_else_pushes(tmp_path, harness.remote, "thread-a", "src/shared.txt", "theirs\n")
    ctx = harness.context("thread-a", "Change the shared file")
    switch_to_branch(ctx)
    (ctx.checkout / "src" / "shared.txt").write_text("ours\n")
    from steps import commit, push

    commit.run(ctx)
    ours = ctx.commit
    with pytest.raises(StepError) as failure:
        push.run(ctx)
    assert failure.value.error_code == "GIT_CONFLICT" and "thread-a-conflict-1" in str(failure.value)
    assert git_out(harness.remote, "rev-parse", "thread-a-conflict-1") == ours  # nothing lost
    assert git_out(harness.remote, "show", "thread-a:src/shared.txt") == "theirs"  # never forced
    assert git_out(ctx.checkout, "status", "--porcelain") == ""
    # A second conflict gets the next free name.
    ctx2 = harness.context("thread-a", "Change it again")
    someone_else_pushes(tmp_path, harness.remote, "thread-a", "src/shared.txt", "theirs again\n")
    (ctx2.checkout / "src" / "shared.txt").write_text("ours again\n")
    commit.run(ctx2)
    with pytest.raises(StepError, match="thread-a-conflict-2"):
        push.run(ctx2)


def test_unreachable_remote_leaves_a_pending_push_that_the_next_command_delivers(harness, tmp_path):
    ctx = edit_and_commit(harness, "thread-a", "a.txt", "a\n")
    away = tmp_path / "remote-away"
    harness.remote.rename(away)  # the remote is gone for a while
    try:
        with pytest.raises(StepError) as failure:
            harness.finish(ctx)
        assert failure.value.error_code == "PUSH_FAILED" and "kept" in str(failure.value)
        assert Ledger(ctx.checkout).pending_pushes() == ["thread-a"]
        # The next command works while the remote is still away: fetch fails, it goes on locally.
        later = harness.start("thread-b")
        assert any("could not fetch" in warning for warning in later.warnings)
    finally:
        away.rename(harness.remote)
    harness.start("thread-c")  # the remote is back: pending branches are pushed first
    assert "a.txt" in files_of(harness.remote, "thread-a")
    assert Ledger(ctx.checkout).pending_pushes() == []


def test_bin_push_pending_delivers_pending_branches(harness, tmp_path):
    ctx = edit_and_commit(harness, "thread-a", "a.txt", "a\n")
    away = tmp_path / "remote-away"
    harness.remote.rename(away)
    with pytest.raises(StepError):
        harness.finish(ctx)
    away.rename(harness.remote)
    env = {"PATH": "/usr/bin:/bin", "WORKSPACE_PATH": harness.config.workspace_path, "PUSH_RETRY_SECONDS": "1"}
    shown = operator(f"bin/workspace {ctx.checkout}", env)
    assert "pending pushes: thread-a" in shown.stdout
    pushed = operator(f"bin/push-pending {ctx.checkout}", env)
    assert pushed.returncode == 0 and "thread-a: pushed" in pushed.stdout
    assert "a.txt" in files_of(harness.remote, "thread-a")
    assert "pending pushes: none" in operator(f"bin/workspace {ctx.checkout}", env).stdout


def leave_mid_rebase(ctx) -> None:
    """A real rebase stopped on a conflict, as a killed push-time rebase leaves it."""
    checkout = ctx.checkout
    git(checkout, "checkout", "--quiet", "-b", "side", "origin/main")
    (checkout / "src" / "shared.txt").write_text("side\n")
    git(checkout, "commit", "--quiet", "-am", "side")
    git(checkout, "checkout", "--quiet", "thread-a")
    (checkout / "src" / "shared.txt").write_text("ours\n")
    git(checkout, "commit", "--quiet", "-am", "ours")
    env = {**os.environ, **GIT_ENV, **repository_env(checkout)}
    subprocess.run(["git", "rebase", "side"], cwd=checkout, capture_output=True, check=False, env=env)
    assert (git_dir_for(checkout) / "rebase-merge").exists()


def test_crash_leftovers_are_repaired_and_the_command_succeeds(harness):
    ctx = harness.start("thread-a")
    harness.finish(ctx)
    leave_mid_rebase(ctx)
    (git_dir_for(ctx.checkout) / "index.lock").write_text("")
    repaired = harness.context("thread-a", "After the crash")
    result = workspace.run(repaired)
    assert result.status == "ok"
    assert any("aborted an unfinished rebase" in action for action in result.details["repaired"])
    assert any("index.lock" in action for action in result.details["repaired"])
    assert not (git_dir_for(ctx.checkout) / "rebase-merge").exists()
    assert git_out(ctx.checkout, "log", "-1", "--format=%s", "thread-a") == "ours"  # the commit survived
    (ctx.checkout / "after.txt").write_text("after\n")
    harness.finish(repaired)
    assert "after.txt" in files_of(harness.remote, "thread-a")


def test_a_detached_head_with_its_own_commit_is_kept_on_a_recovery_branch(harness):
    ctx = harness.start("thread-a")
    harness.finish(ctx)
    git(ctx.checkout, "checkout", "--quiet", "--detach")
    (ctx.checkout / "detached.txt").write_text("made while detached\n")
    git(ctx.checkout, "add", "--all")
    git(ctx.checkout, "commit", "--quiet", "-m", "detached work")
    lost_commit = git_out(ctx.checkout, "rev-parse", "HEAD")
    (ctx.checkout / "dirty.txt").write_text("uncommitted, detached\n")
    later = harness.context("thread-b")
    result = workspace.run(later)
    recovered = f"recovered-{lost_commit[:12]}"
    assert f"detached HEAD kept on branch {recovered}" in result.details["repaired"]
    assert git_out(ctx.checkout, "rev-parse", recovered) == lost_commit
    assert "dirty.txt" in stash_files(ctx.checkout, recovered)  # its edits stay with it
    assert git_out(ctx.checkout, "rev-parse", "--abbrev-ref", "HEAD") == "thread-b"


def test_a_stash_cut_short_by_a_crash_is_completed(harness):
    ctx = harness.start("thread-a")
    harness.end_without_commit(ctx)
    (ctx.checkout / "hand.txt").write_text("by hand\n")
    # The crash came after `git stash push` wrote the stash and before it cleaned the tree.
    ledger = Ledger(ctx.checkout)
    ledger.begin_operation({"op": "stash", "name": "webordinary: thread-a -"})
    git(ctx.checkout, "stash", "push", "--include-untracked", "--message", "webordinary: thread-a -")
    (ctx.checkout / "hand.txt").write_text("by hand\n")  # as if the tree had not been cleaned yet
    result = workspace.run(harness.context("thread-b"))
    assert "completed a stash cut short" in " ".join(result.details["repaired"])
    assert stash_files(ctx.checkout, "thread-a") == {"hand.txt"}  # once, not twice
    assert git_out(ctx.checkout, "stash", "list").count("webordinary: thread-a") == 1


def test_a_checkout_folder_gone_is_written_again_from_its_repository(harness):
    """A clone cut short between fetching and its rename, or the folder removed by hand: the repository
    beside it still holds every commit and what was staged, and the command goes on from there."""
    ctx = harness.start("thread-a")
    (ctx.checkout / "pushed.txt").write_text("pushed\n")
    harness.finish(ctx)
    (ctx.checkout / "local.txt").write_text("committed, never pushed\n")
    git(ctx.checkout, "add", "local.txt")
    git(ctx.checkout, "commit", "--quiet", "-m", "local only")
    local_commit = git_out(ctx.checkout, "rev-parse", "HEAD")
    (ctx.checkout / "staged.txt").write_text("staged, not committed\n")
    git(ctx.checkout, "add", "staged.txt")
    shutil.rmtree(ctx.checkout)
    cut_short = ctx.checkout.with_name(f".{ctx.checkout.name}.cloning-99999")  # the clone's staging folder
    (cut_short / "src").mkdir(parents=True)
    later = harness.context("thread-a", "After the folder went")
    result = workspace.run(later)
    assert result.status == "ok" and result.details["restoredWorkTree"] is True and result.details["cloned"] is False
    assert git_out(ctx.checkout, "rev-parse", "thread-a") == local_commit  # nothing committed was lost
    assert (ctx.checkout / "local.txt").read_text() == "committed, never pushed\n"
    assert (ctx.checkout / "staged.txt").read_text() == "staged, not committed\n"
    assert (ctx.checkout / "pushed.txt").is_file() and (ctx.checkout / "README.md").is_file()
    assert not cut_short.exists()
    harness.finish(later)
    assert {"pushed.txt", "local.txt", "staged.txt"} <= files_of(harness.remote, "thread-a")


def test_an_interrupt_during_a_first_clone_is_answered_with_no_checkout_to_commit(harness):
    """The interrupt came while the clone ran: the repository may be there, its checkout folder not yet."""
    ctx = harness.start("thread-a")
    harness.finish(ctx)
    shutil.rmtree(ctx.checkout)
    interrupted = harness.context("thread-a", "Cut short while cloning")
    response = harness.interrupt(interrupted)
    assert response["errorCode"] == "INTERRUPTED" and response["commit"] is None and response["filesChanged"] == []
    assert not ctx.checkout.exists()  # left for the next command's workspace step to write again


def test_a_clone_cut_short_before_it_fetched_is_made_again(harness):
    """git writes the repository's skeleton first: readable, but with no commit and no checkout folder."""
    git_dir = git_dir_for(harness.checkout)
    git_dir.parent.mkdir(parents=True)
    git(git_dir.parent, "init", "--quiet", "--bare", str(git_dir))
    result = workspace.run(harness.context("thread-a"))
    assert result.status == "ok" and result.details["cloned"] is True
    assert (harness.checkout / "README.md").is_file()
    assert [p.name for p in git_dir.parent.iterdir() if ".set-aside-" in p.name] == []  # nothing worth keeping


def test_a_repository_with_refs_but_no_commit_at_head_is_kept_aside_not_deleted(harness):
    ctx = harness.start("thread-a")
    harness.finish(ctx)
    git_dir = git_dir_for(ctx.checkout)
    kept = git_out(ctx.checkout, "rev-parse", "thread-a")
    (git_dir / "HEAD").write_text("ref: refs/heads/never-made\n")
    shutil.rmtree(ctx.checkout)
    result = workspace.run(harness.context("thread-b"))
    assert result.status == "ok" and result.details["cloned"] is True
    (aside,) = [p for p in git_dir.parent.iterdir() if p.name.startswith(f"{git_dir.name}.set-aside-")]
    assert (aside / "refs" / "heads" / "thread-a").read_text().strip() == kept


def test_a_remote_that_is_no_repository_is_reported_by_gits_fatal_line(harness, tmp_path):
    """git ends with advice ("...and the repository exists."); the reason is its `fatal:` line."""
    missing = tmp_path / "not-a-repository" / "site.git"
    missing.mkdir(parents=True)  # there, but no repository: git's answer ends with two lines of advice
    with pytest.raises(StepError) as failure:
        workspace.run(harness.context("thread-a", repo_url=f"file://{missing}"))
    assert "exited with 128: fatal:" in str(failure.value) and str(missing) in str(failure.value)


def operator(command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)


def test_bin_stash_lists_shows_restores_and_drops(harness):
    ctx = harness.start("thread-a")
    harness.end_without_commit(ctx)
    (ctx.checkout / "hand.txt").write_text("by hand\n")
    harness.start("thread-b")  # stashes hand.txt for thread-a
    listed = operator(f"bin/stash {ctx.checkout} list")
    assert listed.returncode == 0 and "thread-a" in listed.stdout
    sha = listed.stdout.split()[1]
    shown = operator(f"bin/stash {ctx.checkout} show {sha}")
    assert shown.returncode == 0 and "hand.txt" in shown.stdout
    harness.end_without_commit(harness.context("thread-b"))
    Ledger(ctx.checkout).end_command()
    restored = operator(f"bin/stash {ctx.checkout} restore thread-a")
    assert restored.returncode == 0 and "restored 1 stash" in restored.stdout, restored.stderr
    assert (ctx.checkout / "hand.txt").read_text() == "by hand\n"
    assert operator(f"bin/stash {ctx.checkout} list").stdout.strip() == "no session stashes"
    git(ctx.checkout, "stash", "push", "--include-untracked", "--message", "webordinary: thread-a -")
    sha = operator(f"bin/stash {ctx.checkout} list").stdout.split()[1]
    dropped = operator(f"bin/stash {ctx.checkout} drop {sha}")
    assert dropped.returncode == 0 and operator(f"bin/stash {ctx.checkout} list").stdout.strip() == "no session stashes"


def test_bin_repair_and_workspace_show_and_fix_a_broken_checkout(harness):
    ctx = harness.start("thread-a")
    harness.finish(ctx)
    leave_mid_rebase(ctx)
    state = operator(f"bin/workspace {ctx.checkout}")
    assert state.returncode == 0 and "unfinished rebase" in state.stdout
    fixed = operator(f"bin/repair {ctx.checkout}")
    assert fixed.returncode == 0 and "aborted an unfinished rebase" in fixed.stdout
    assert "broken states: none" in operator(f"bin/workspace {ctx.checkout}").stdout
    assert operator(f"bin/repair {ctx.checkout}").stdout.strip() == "nothing to repair"


@pytest.mark.parametrize("script", ["stash", "push-pending", "workspace", "repair"])
def test_git_scripts_explain_themselves_and_refuse_a_wrong_path(script, tmp_path):
    helped = operator(f"bin/{script} --help")
    assert helped.returncode == 0 and "checkout" in helped.stdout
    arguments = " list" if script == "stash" else ""
    wrong = operator(f"bin/{script} {tmp_path / 'nowhere'}{arguments}")
    assert wrong.returncode == 1 and wrong.stderr.strip() == f"error: {tmp_path / 'nowhere'} is not a git checkout"
