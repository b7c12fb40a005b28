"""Sessions sharing one checkout: every branch holds exactly its own session's edits, at every step."""

from __future__ import annotations

import logging
import os
import random

import pytest
from git_harness import Harness, files_of, harness_config, plain_remote, stash_files
from helpers import git_out

SESSIONS = ("a", "b", "c")


@pytest.fixture
def harness(tmp_path):
    return Harness(harness_config(tmp_path / "workspace"), plain_remote(tmp_path))


WALK_STEPS = int(os.environ.get("SESSION_WALK_STEPS", "40"))


def untracked_and_changed(checkout) -> set[str]:
    raw = git_out(checkout, "status", "--porcelain=v1", "--untracked-files=all")
    return {line[3:] for line in raw.splitlines()}


def test_randomised_switching_keeps_every_edit_on_its_own_session(harness, caplog):
    """A seeded walk of WALK_STEPS steps: commands, edits left uncommitted, interrupts and crashes, in 3
    sessions (SESSION_WALK_STEPS=1000 for a longer walk by hand)."""
    caplog.set_level(logging.INFO)
    rng = random.Random(20261121)
    made: dict[str, set[str]] = {s: set() for s in SESSIONS}
    every_edit: set[str] = set()
    current: str | None = None
    for step in range(WALK_STEPS):
        session = rng.choice(SESSIONS)
        kind = rng.choice(["command", "command", "uncommitted", "interrupt", "crash"])
        ctx = harness.start(f"thread-{session}", f"Step {step} for {session}")
        current = session
        name = f"edits/{session}-{step}.txt"
        path = ctx.checkout / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"{kind} in {session} at {step}\n")
        if rng.random() < 0.3:  # also change a tracked file now and then
            shared = ctx.checkout / "src" / f"{session}.txt"
            shared.write_text(shared.read_text() + f"{step}\n" if shared.exists() else f"{step}\n")
            made[session].add(f"src/{session}.txt")
            every_edit.add(f"src/{session}.txt")
        made[session].add(name)
        every_edit.add(name)
        if kind == "command":
            harness.finish(ctx, push_too=rng.random() < 0.5)
        elif kind == "interrupt":
            harness.interrupt(ctx)
        elif kind == "uncommitted":
            harness.end_without_commit(ctx)
        # "uncommitted": an edit left in the tree by hand; "crash": the worker died before committing.
        # Either way the next command must keep it with this session.

        checkout = ctx.checkout
        for other in SESSIONS:
            branch = f"thread-{other}"
            if not made[other]:
                continue
            held = files_of(checkout, branch) | stash_files(checkout, branch)
            if other == current:
                held |= untracked_and_changed(checkout)
            assert held & every_edit == made[other], f"step {step} ({kind} in {session}): {branch} is wrong"

    # The walk went through every path: stashes made and restored, WIP commits of dead commands.
    events = [record.getMessage() for record in caplog.records]
    least = WALK_STEPS // 20
    assert sum("stashed for their session" in e for e in events) >= least
    assert sum("restored the session's stashed changes" in e for e in events) >= least
    assert sum("a command died here" in e for e in events) >= least
    assert sum("interrupted edits committed as WIP" in e for e in events) >= least


def test_a_restore_that_conflicts_keeps_the_stash_and_leaves_the_tree_clean(harness, tmp_path):
    ctx = harness.start("thread-a")
    harness.finish(ctx)
    (ctx.checkout / "src" / "shared.txt").write_text("edited by hand in a\n")  # left uncommitted
    harness.start("thread-b")  # stashes a's edit for thread-a
    assert "src/shared.txt" in stash_files(ctx.checkout, "thread-a")
    # Meanwhile someone pushes a change of the same lines to thread-a.
    other = tmp_path / "other"
    git_out(tmp_path, "clone", "--quiet", "--branch", "thread-a", str(harness.remote), str(other))
    (other / "src" / "shared.txt").write_text("changed upstream\n")
    git_out(other, "-c", "user.name=X", "-c", "user.email=x@x", "commit", "--quiet", "-am", "Upstream change")
    git_out(other, "push", "--quiet", "origin", "thread-a")

    back = harness.context("thread-a")
    from steps import workspace

    workspace.run(back)
    assert any("conflict" in warning and "kept in the stash" in warning for warning in back.warnings)
    assert git_out(back.checkout, "status", "--porcelain") == ""  # clean tree
    assert (back.checkout / "src" / "shared.txt").read_text() == "changed upstream\n"
    assert "src/shared.txt" in stash_files(back.checkout, "thread-a")  # nothing lost
