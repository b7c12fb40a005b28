"""The push policy's decisions, with git's real wordings and a scripted git (no network needed)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from git_harness import harness_config

from steps.base import StepError
from steps.git.ledger import Ledger
from steps.git.remote import Pusher, classify
from steps.processes.shell import CommandFailed, CommandResult


@pytest.mark.parametrize(
    ("output", "kind"),
    [
        ("! [rejected]        thread-a -> thread-a (non-fast-forward)", "rejected"),
        (
            "! [rejected]        thread-a -> thread-a (fetch first)\nhint: Updates were rejected because the remote "
            "contains work that you do not have locally.",
            "rejected",
        ),
        ("!\trefs/heads/a:refs/heads/a\t[rejected] (non-fast-forward)", "rejected"),
        ("hint: Updates were rejected because the tip of your current branch is behind", "rejected"),
        ("! [rejected]        a -> a (stale info)", "rejected"),
        ("!\trefs/heads/a:refs/heads/a\t[remote rejected] (pre-receive hook declined)", "permanent"),
        (
            "remote: Permission to o/r.git denied to bot.\nfatal: unable to access 'https://x/': The requested URL "
            "returned error: 403",
            "permanent",
        ),
        ("fatal: Authentication failed for 'https://github.com/o/r.git/'", "permanent"),
        ("fatal: unable to access 'https://github.com/o/r.git/': Could not resolve host: github.com", "transient"),
        ("fatal: unable to access 'https://x/': Failed to connect to x port 443: Connection refused", "transient"),
        ("error: RPC failed; HTTP 502 curl 22 The requested URL returned error: 502", "transient"),
        ("fatal: the remote end hung up unexpectedly", "transient"),
        (
            "fatal: '/srv/site.git' does not appear to be a git repository\nfatal: Could not read from remote "
            "repository.",
            "transient",
        ),
        ("ssh: connect to host github.com port 22: Connection timed out", "transient"),
        ("something nobody has seen before", "permanent"),
    ],
)
def test_classify(output, kind):
    assert classify(output) == kind


@dataclass
class ScriptedGit:
    """Responder `git push` from a script of failures, then succeeds."""

    failures: list[str]
    pushes: int = 0
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def run(self, *args: str, **_: object) -> CommandResult:
        self.calls.append(args)
        if args[0] == "push":
            self.pushes += 1
            if self.failures:
                raise CommandFailed(["git", *args], 1, self.failures.pop(0).splitlines())
        return CommandResult(0, "", "", 0.0)


def test_transient_failures_are_retried_with_growing_jittered_delays(tmp_path):
    config = harness_config(tmp_path, PUSH_RETRY_SECONDS="60")
    git = ScriptedGit(["fatal: the remote end hung up unexpectedly"] * 3)
    delays: list[float] = []
    outcome = Pusher(git, config, Ledger(tmp_path), sleep=delays.append).push("thread-a")  # type: ignore[arg-type]
    assert outcome.pushed and str(outcome) == "pushed" and git.pushes == 4
    assert len(delays) == 3 and delays[0] < delays[2]  # 0.5 s, 1 s, 2 s, each ±50 %
    assert all(0.2 <= d <= 3.0 for d in delays)


def test_a_permanent_refusal_is_not_retried(tmp_path):
    config = harness_config(tmp_path)
    git = ScriptedGit(["!\trefs/heads/a:refs/heads/a\t[remote rejected] (pre-receive hook declined)"])
    with pytest.raises(StepError) as failure:
        Pusher(git, config, Ledger(tmp_path), sleep=lambda _: None).push("thread-a")  # type: ignore[arg-type]
    assert failure.value.error_code == "PUSH_FAILED" and git.pushes == 1
    assert Ledger(tmp_path).pending_pushes() == []  # refused, not unreachable: nothing to retry later


def test_retries_stop_at_the_time_budget_and_the_branch_becomes_pending(tmp_path):
    config = harness_config(tmp_path, PUSH_RETRY_SECONDS="0")
    git = ScriptedGit(["fatal: unable to access 'https://x/': Could not resolve host: x"] * 10)
    with pytest.raises(StepError, match="kept"):
        Pusher(git, config, Ledger(tmp_path), sleep=lambda _: None).push("thread-a")  # type: ignore[arg-type]
    assert git.pushes == 1 and Ledger(tmp_path).pending_pushes() == ["thread-a"]
    assert all("--force" not in call and "-f" not in call for call in git.calls)


@dataclass
class RemoteGoneMidRebase(ScriptedGit):
    """The push is rejected; then the fetch for the rebase cannot reach the remote any more."""

    def run(self, *args: str, **kwargs: object) -> CommandResult:
        if args[0] == "fetch":
            self.calls.append(args)
            raise CommandFailed(["git", *args], 128, ["fatal: unable to access 'x': Could not resolve host: x"])
        return super().run(*args, **kwargs)


def test_a_remote_lost_during_the_rebase_leaves_the_branch_pending_not_a_crash(tmp_path):
    config = harness_config(tmp_path, PUSH_RETRY_SECONDS="0")
    git = RemoteGoneMidRebase(failures=["! [rejected]        thread-a -> thread-a (fetch first)"] * 5)
    ledger = Ledger(tmp_path)
    with pytest.raises(StepError) as raised:
        Pusher(git, config, ledger, sleep=lambda _: None).push("thread-a")  # type: ignore[arg-type]
    assert raised.value.error_code == "PUSH_FAILED" and "kept" in str(raised.value)
    assert ledger.pending_pushes() == ["thread-a"]
