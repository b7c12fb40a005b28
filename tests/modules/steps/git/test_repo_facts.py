"""Facts the workspace step reads from our repository's files instead of starting git (issue 21): each one
agrees with what git says, in the plain cases and the unusual ones (detached, packed refs, a changed config)."""

from __future__ import annotations

import pytest
from git_harness import Harness, harness_config, plain_remote
from helpers import git, git_out

from steps.git.checkout import point_origin_at_the_repository
from steps.processes import shell


@pytest.fixture
def harness(tmp_path):
    return Harness(harness_config(tmp_path / "workspace"), plain_remote(tmp_path))


def git_says_branch(harness: Harness) -> str | None:
    result = git(harness.checkout, "symbolic-ref", "--quiet", "--short", "HEAD") if not detached(harness) else None
    return result.stdout.strip() if result else None


def detached(harness: Harness) -> bool:
    return not (harness.checkout.parent / f".{harness.checkout.name}.git" / "HEAD").read_text().startswith("ref:")


def test_the_branch_and_the_repository_as_git_sees_them(harness):
    ctx = harness.start("t1")
    assert ctx.git.is_repo() and ctx.git.current_branch() == "thread-t1" == git_says_branch(harness)
    git(harness.checkout, "checkout", "--quiet", "--detach")
    assert ctx.git.current_branch() is None and ctx.git.head() == git_out(harness.checkout, "rev-parse", "HEAD")
    git(harness.checkout, "checkout", "--quiet", "-b", "feature/a.b")
    assert ctx.git.current_branch() == "feature/a.b"
    (ctx.git.git_dir / "HEAD").write_text("garbage\n")  # not what git writes: git is asked, and says no
    assert ctx.git.is_repo() is False


def test_ref_names_are_exact_and_read_in_one_run(harness):
    ctx = harness.start("t1")
    harness.finish(ctx)
    git(harness.checkout, "branch", "feature/below")  # for-each-ref matches it for the pattern refs/heads/feature
    found = ctx.git.ref_names("refs/heads/thread-t1", "refs/remotes/origin/thread-t1", "refs/heads/feature")
    assert set(found) == {"refs/heads/thread-t1", "refs/remotes/origin/thread-t1"}
    assert found["refs/heads/thread-t1"] == git_out(harness.checkout, "rev-parse", "thread-t1")


def test_stashes_are_seen_loose_and_packed(harness):
    ctx = harness.start("t1")
    assert ctx.git.may_have_stashes() is False
    (harness.checkout / "src" / "shared.txt").write_text("edited\n")
    git(harness.checkout, "stash", "push", "--quiet", "-m", "webordinary: thread-t1 cmd-x")
    assert ctx.git.may_have_stashes() is True
    git(harness.checkout, "pack-refs", "--all")
    assert ctx.git.may_have_stashes() is True and git_out(harness.checkout, "stash", "list") != ""


def test_origin_is_asked_again_only_when_the_config_changed(harness, monkeypatch):
    ctx = harness.start("t1")
    asked: list[list[str]] = []
    real_run = shell.run

    def counting(argv, **kwargs):
        if "get-url" in argv:
            asked.append(list(argv))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(shell, "run", counting)
    point_origin_at_the_repository(ctx)  # a fresh clone: never asked yet
    point_origin_at_the_repository(ctx)
    assert len(asked) == 1  # the second time nothing had changed
    git(harness.checkout, "remote", "set-url", "origin", "/elsewhere.git")  # someone changed the config
    point_origin_at_the_repository(ctx)
    assert len(asked) == 2
    assert git_out(harness.checkout, "remote", "get-url", "origin") == str(harness.remote)


def test_head_is_the_commit_git_names_loose_packed_and_detached(harness):
    ctx = harness.start("t1")
    (harness.checkout / "src" / "new.txt").write_text("new\n")
    harness.finish(ctx)
    assert ctx.git.head() == git_out(harness.checkout, "rev-parse", "HEAD") == ctx.commit
    git(harness.checkout, "pack-refs", "--all")
    assert not (ctx.git.git_dir / "refs" / "heads" / "thread-t1").exists()
    assert ctx.git.head() == ctx.commit
    git(harness.checkout, "checkout", "--quiet", "--detach", "HEAD~1")
    assert ctx.git.head() == git_out(harness.checkout, "rev-parse", "HEAD") != ctx.commit


def test_ref_names_read_loose_or_packed_agree(harness):
    ctx = harness.start("t1")
    harness.finish(ctx)
    wanted = ("refs/heads/thread-t1", "refs/remotes/origin/thread-t1")
    loose = ctx.git.ref_names(*wanted)
    assert (ctx.git.git_dir / "refs" / "heads" / "thread-t1").is_file() and set(loose) == set(wanted)
    git(harness.checkout, "pack-refs", "--all")
    assert not (ctx.git.git_dir / "refs" / "heads" / "thread-t1").exists()
    assert ctx.git.ref_names(*wanted) == loose
    assert ctx.git.ref_names("refs/heads/none", "refs/heads/thread-t1") == {"refs/heads/thread-t1": loose[wanted[0]]}
