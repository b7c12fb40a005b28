"""Pushing to the remote: never forced; nothing committed is ever lost.

- transient failures (network, 5xx, time-outs) are retried with backoff and jitter within
  PUSH_RETRY_SECONDS; if the remote stays unreachable the commits stay local and the branch is recorded
  as pending, to be pushed first by the next command in this workspace (or `bin/push-pending`);
- a non-fast-forward rejection (any of git's wordings) → fetch, rebase onto the remote branch, push again;
- a rebase conflict → abort, push the local work to `{branch}-conflict-{n}`, and the session branch
  continues from the remote's version.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from steps.base import StepError
from steps.git.ledger import Ledger
from steps.git.repo import Git
from steps.processes.shell import CommandFailed, CommandTimedOut
from supervisor.contract.codes import ErrorCode
from supervisor.contract.config import Config

log = logging.getLogger("steps.push")
PUSH_TIMEOUT_SECONDS = 300
MAX_REBASES = 3

NON_FAST_FORWARD = (
    "non-fast-forward",
    "fetch first",
    "tip of your current branch is behind",
    "remote contains work that you do",
    "stale info",
    "! [rejected]",
)
PERMANENT = (
    "authentication failed",
    "permission denied",
    "403",
    "[remote rejected]",
    "protected branch",
    "invalid username or password",
    "repository not found",
)
TRANSIENT = (
    "could not resolve host",
    "timed out",
    "connection refused",
    "connection reset",
    "hung up",
    "early eof",
    "rpc failed",
    "returned error: 5",
    "unable to access",
    "could not read from remote",
    "does not appear to be a git repository",
    "network is unreachable",
    "temporary failure",
    "internal server error",
    "bad gateway",
    "service unavailable",
    "gateway time",
)


def classify(output: str) -> str:
    """ "rejected" (non-fast-forward), "permanent" or "transient", from git's C-locale output."""
    text = output.lower()
    if any(words in text for words in NON_FAST_FORWARD):
        return "rejected"
    if any(words in text for words in PERMANENT):
        return "permanent"
    if any(words in text for words in TRANSIENT):
        return "transient"
    return "permanent"


@dataclass(frozen=True)
class PushOutcome:
    """How a push ended without an error: pushed as is, or (after a rebase conflict) to a conflict
    branch; `pending` when the remote stayed unreachable and the branch waits for the next command."""

    conflict_branch: str | None = None
    pending: str | None = None  # why it is still pending

    @property
    def pushed(self) -> bool:
        return self.conflict_branch is None and self.pending is None

    def __str__(self) -> str:
        if self.pending is not None:
            return f"still pending: {self.pending}"
        return f"pushed to {self.conflict_branch}" if self.conflict_branch else "pushed"


@dataclass
class Pusher:
    git: Git
    config: Config
    ledger: Ledger
    sleep: object = time.sleep  # replaced in unit tests
    # Called right before every push (the command's branch, a conflict branch): raises when this
    # container no longer holds the workspace (steps/fence.py), so a stale owner never pushes.
    before_push: Callable[[], None] = lambda: None

    def push(self, branch: str) -> PushOutcome:
        """Push `branch` (to a conflict branch when its rebase conflicts); raises StepError."""
        deadline = time.monotonic() + self.config.push_retry_seconds
        attempt = rebases = 0
        while True:
            attempt += 1
            self.before_push()
            try:
                self.git.run(
                    "push",
                    "--porcelain",
                    "origin",
                    f"refs/heads/{branch}:refs/heads/{branch}",
                    credentials=True,
                    timeout=PUSH_TIMEOUT_SECONDS,
                )
                self.ledger.remove_pending(branch)
                return PushOutcome()
            except CommandTimedOut as error:
                kind, reason = "transient", str(error)
            except CommandFailed as error:
                reason = "\n".join(error.tail)
                kind = classify(reason)
            if kind == "rejected" and rebases < MAX_REBASES:
                rebases += 1
                log.info("push rejected: the remote branch moved; rebasing onto it", extra={"branch": branch})
                try:
                    conflict_branch = self._rebase_onto_remote(branch)
                except (CommandFailed, CommandTimedOut) as error:
                    # The remote went away in the middle (fetch, conflict push, ls-remote): like any
                    # failure to reach it, retried, then recorded as pending; never a crash of the step.
                    kind, reason = "transient", str(error)
                else:
                    if conflict_branch:
                        return PushOutcome(conflict_branch=conflict_branch)
                    continue
            if kind == "transient" and time.monotonic() < deadline:
                delay = min(30.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)  # noqa: S311 - jitter
                delay = max(0.05, min(delay, deadline - time.monotonic()))
                log.warning(
                    "push failed (%s); retrying in %.1fs", _last_line(reason), delay, extra={"attempt": attempt}
                )
                self.sleep(delay)  # type: ignore[operator]
                continue
            if kind == "transient":
                self.ledger.add_pending(branch)
                raise StepError(
                    ErrorCode.PUSH_FAILED,
                    f"remote unreachable ({_last_line(reason)}); the commits are kept "
                    f"locally and {branch} will be pushed by the next command",
                )
            raise StepError(ErrorCode.PUSH_FAILED, f"push of {branch} refused: {_last_line(reason)}")

    def _rebase_onto_remote(self, branch: str) -> str | None:
        """Rebase `branch` onto the remote's; on a conflict push it to a conflict branch and return that."""
        git = self.git
        git.run(
            "fetch",
            "--quiet",
            "origin",
            f"+refs/heads/{branch}:refs/remotes/origin/{branch}",
            credentials=True,
            timeout=PUSH_TIMEOUT_SECONDS,
        )
        upstream = f"refs/remotes/origin/{branch}"
        rebased = git.run("rebase", "--quiet", upstream, branch, ok_codes=range(256))
        if rebased.exit_code == 0:
            return None
        git.run("rebase", "--abort", ok_codes=range(256))
        conflict = self._free_conflict_name(branch)
        self.before_push()
        git.run(
            "push",
            "--quiet",
            "origin",
            f"refs/heads/{branch}:refs/heads/{conflict}",
            credentials=True,
            timeout=PUSH_TIMEOUT_SECONDS,
        )
        # The work is safe on the conflict branch; the session goes on from the remote's version.
        git.run("checkout", "--quiet", branch)
        git.run("reset", "--quiet", "--hard", upstream)
        log.warning("rebase conflicted; local work pushed to %s", conflict, extra={"branch": branch})
        return conflict

    def _free_conflict_name(self, branch: str) -> str:
        taken = self.git.out("ls-remote", "--heads", "origin", f"refs/heads/{branch}-conflict-*", credentials=True)
        names = {line.split("refs/heads/", 1)[1] for line in taken.splitlines() if "refs/heads/" in line}
        number = 1
        while f"{branch}-conflict-{number}" in names:
            number += 1
        return f"{branch}-conflict-{number}"


def _last_line(text: str) -> str:
    """git's own reason: its first `fatal:`/`error:` line (the advice after it says less), else the last."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    reasons = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return (reasons or lines or ["no output"])[0 if reasons else -1][:300]


def push_pending(
    git: Git, config: Config, ledger: Ledger, before_push: Callable[[], None] = lambda: None
) -> dict[str, PushOutcome]:
    """Push every branch recorded as pending; returns branch → outcome (failures stay pending)."""
    outcomes = {}
    for branch in ledger.pending_pushes():
        if not git.has_ref(f"refs/heads/{branch}"):
            ledger.remove_pending(branch)
            continue
        try:
            outcomes[branch] = Pusher(git, config, ledger, before_push=before_push).push(branch)
        except (StepError, CommandFailed, CommandTimedOut) as error:  # stays pending; the command goes on
            outcomes[branch] = PushOutcome(pending=str(error))
    return outcomes
