"""In-process harness for the git tests: the workers' own step functions on a plain (non-npm) site."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from helpers import git, git_out

from steps import commit, push, workspace
from steps.base import StepContext, workspace_path
from steps.git.ledger import Ledger
from steps.git.repo import Git
from steps.interrupted import finish_interrupted
from supervisor.contract.command import parse_command
from supervisor.contract.config import Config, load_config


def plain_remote(root: Path, name: str = "site") -> Path:
    """A bare remote holding a tiny site with no package.json (no npm in these tests)."""
    seed = root / f"{name}-seed"
    (seed / "src").mkdir(parents=True)
    (seed / "src" / "shared.txt").write_text("line one\nline two\n")
    (seed / "README.md").write_text("site\n")
    git(seed, "init", "--quiet", "--initial-branch=main")
    git(seed, "add", "--all")
    git(seed, "commit", "--quiet", "-m", "Initial site")
    remote = root / "remotes" / f"{name}.git"
    remote.parent.mkdir(exist_ok=True)
    git(root, "clone", "--quiet", "--bare", str(seed), str(remote))
    shutil.rmtree(seed)
    return remote


def harness_config(workspace_root: Path, **extra: str) -> Config:
    env = {"WORKSPACE_PATH": str(workspace_root), "PUSH_RETRY_SECONDS": "1", "LOG_FORMAT": "text", **extra}
    return load_config(env, require_input_queue=False)


@dataclass
class Harness:
    config: Config
    remote: Path
    counter: int = 0

    def context(self, thread: str, instruction: str = "Edit", repo_url: str | None = None) -> StepContext:
        self.counter += 1
        body = {
            "instruction": instruction,
            "commandId": f"cmd-{self.counter}",
            "chatThreadId": thread,
            "clientId": "acme",
            "userId": "u1",
        }
        command = parse_command(json.dumps(body), repo_url or str(self.remote))
        checkout = workspace_path(self.config, command)
        return StepContext(self.config, command, checkout, Git(checkout, self.config))

    def start(self, thread: str, instruction: str = "Edit") -> StepContext:
        """A command's workspace step: repair, fetch, settle leftovers, switch, restore."""
        ctx = self.context(thread, instruction)
        workspace.run(ctx)
        return ctx

    def finish(self, ctx: StepContext, *, push_too: bool = True) -> None:
        """Commit (and push) and end the command, as the pipeline does."""
        commit.run(ctx)
        if push_too:
            push.run(ctx)
        Ledger(ctx.checkout).end_command()

    def end_without_commit(self, ctx: StepContext) -> None:
        """The command finished; what is left in the tree afterwards was edited by hand."""
        Ledger(ctx.checkout).end_command()

    def interrupt(self, ctx: StepContext) -> dict:
        return finish_interrupted(ctx, [], "interrupted by a test")

    @property
    def checkout(self) -> Path:
        return Path(self.config.workspace_path, "acme", "u1", self.remote.name.removesuffix(".git"))


def files_of(checkout: Path, ref: str) -> set[str]:
    return set(git_out(checkout, "ls-tree", "-r", "--name-only", ref).split())


def stash_files(checkout: Path, branch: str) -> set[str]:
    """Files held by the session stashes of `branch` (tracked changes and untracked files)."""
    held: set[str] = set()
    listing = git_out(checkout, "stash", "list", "--format=%H %gs")
    for line in listing.splitlines():
        sha, _, subject = line.partition(" ")
        if f"webordinary: {branch} " not in subject:
            continue
        held |= set(git_out(checkout, "diff", "--name-only", f"{sha}^1", sha).split())
        if _has_parent(checkout, sha, 3):  # the untracked files' commit
            held |= files_of(checkout, f"{sha}^3")
    return held


def _has_parent(checkout: Path, sha: str, number: int) -> bool:
    parents = git_out(checkout, "log", "-1", "--format=%P", sha).split()
    return len(parents) >= number
