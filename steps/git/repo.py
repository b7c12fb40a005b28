"""Git, baked once: argument lists, no pager, no prompts, credentials only through askpass, and no
configuration but ours: the repository lives outside the checkout (steps/git/layout.py), the system and
global config files are not read, hooks and fsmonitor are off whatever a config says."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from steps.git.layout import git_dir_for
from steps.processes import shell
from supervisor.contract.config import Config

ASKPASS = Path(__file__).with_name("git-askpass")
# ext:: and fd:: can run commands; only the transports a site remote really uses are allowed.
ALLOWED_PROTOCOLS = "file:git:http:https:ssh"
FIXED_OPTIONS = (
    "-c",
    "core.quotepath=off",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "color.ui=false",
    "-c",
    "advice.detachedHead=false",
    "-c",
    "credential.helper=",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
)
OBJECT_NAME = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
# Only the repository's own config (ours) is read: not /etc/gitconfig, not ~/.gitconfig.
NO_OTHER_CONFIG = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}


@dataclass(frozen=True)
class Git:
    """Runs git in one checkout with the identity and credentials from the configuration."""

    repo: Path
    config: Config

    @property
    def git_dir(self) -> Path:
        return git_dir_for(self.repo)

    def env(self, *, credentials: bool, repository: bool = True) -> dict[str, str]:
        """`repository=False` for a clone, which makes its own."""
        env = shell.scrubbed_env(
            **NO_OTHER_CONFIG,
            GIT_TERMINAL_PROMPT="0",
            GIT_ALLOW_PROTOCOL=ALLOWED_PROTOCOLS,
            LC_ALL="C",
            GIT_AUTHOR_NAME=self.config.git_user_name,
            GIT_AUTHOR_EMAIL=self.config.git_user_email,
            GIT_COMMITTER_NAME=self.config.git_user_name,
            GIT_COMMITTER_EMAIL=self.config.git_user_email,
        )
        if repository:
            env["GIT_DIR"], env["GIT_WORK_TREE"] = str(self.git_dir), str(self.repo)
        else:
            env.pop("GIT_DIR", None)
            env.pop("GIT_WORK_TREE", None)
        if credentials and self.config.github_token:
            env["GIT_ASKPASS"] = str(ASKPASS)
            env["WEBORDINARY_GIT_TOKEN"] = self.config.github_token
        return env

    def run(
        self,
        *args: str,
        credentials: bool = False,
        log_output: bool = False,
        stdin: str | None = None,
        ok_codes: Sequence[int] = (0,),
        cwd: Path | None = None,
        timeout: float | None = None,
        repository: bool = True,
    ) -> shell.CommandResult:
        return shell.run(
            ["git", *FIXED_OPTIONS, *args],
            cwd=cwd or self.repo,
            env=self.env(credentials=credentials, repository=repository),
            stdin=stdin,
            log_output=log_output,
            ok_codes=ok_codes,
            timeout=timeout,
        )

    def out(self, *args: str, **kwargs: object) -> str:
        """stdout of a git command, stripped."""
        return self.run(*args, **kwargs).stdout.strip()  # type: ignore[arg-type]

    def succeeds(self, *args: str) -> bool:
        return self.run(*args, ok_codes=range(256)).exit_code == 0

    # Queries used by several steps -------------------------------------------------------------

    # A few facts are read from the repository's files rather than by starting git (a few ms each, on
    # every command): the repository is ours, beside the checkout, never the job's to write (layout.py).
    # Whatever is not in the plain form git writes falls back to asking git.

    def _head_file(self) -> str | None:
        try:
            return (self.git_dir / "HEAD").read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None

    def is_repo(self) -> bool:
        """What git itself checks: a HEAD it can read, `objects/` and `refs/`."""
        head = self._head_file()
        readable = head is not None and (head.startswith("ref: refs/") or bool(OBJECT_NAME.fullmatch(head)))
        if readable and (self.git_dir / "objects").is_dir() and (self.git_dir / "refs").is_dir():
            return True
        return self.git_dir.is_dir() and self.succeeds("rev-parse", "--git-dir")

    def head(self) -> str | None:
        branch = self.current_branch()
        if branch is not None:  # the branch's loose ref, as a commit leaves it (packed ones: ask git)
            try:
                sha = (self.git_dir / "refs" / "heads" / branch).read_text(encoding="ascii").strip()
            except (OSError, UnicodeDecodeError):
                sha = ""
            if OBJECT_NAME.fullmatch(sha):
                return sha
        result = self.run("rev-parse", "--verify", "--quiet", "HEAD", ok_codes=(0, 1))
        return result.stdout.strip() or None

    def current_branch(self) -> str | None:
        head = self._head_file()
        if head is not None and head.startswith("ref: refs/heads/") and len(head) > len("ref: refs/heads/"):
            return head.removeprefix("ref: refs/heads/")
        if head is not None and OBJECT_NAME.fullmatch(head):
            return None  # detached
        result = self.run("symbolic-ref", "--quiet", "--short", "HEAD", ok_codes=(0, 1))
        return result.stdout.strip() or None

    def has_ref(self, ref: str) -> bool:
        return self.run("show-ref", "--verify", "--quiet", ref, ok_codes=(0, 1)).exit_code == 0

    def ref_names(self, *refs: str) -> dict[str, str]:
        """{full ref name: object name} of those of `refs` that exist: read from their loose files when every
        one has one (a loose ref is what git reads first), else from one git run (packed or missing ones)."""
        loose = {ref: self._loose_ref(ref) for ref in refs}
        if all(loose.values()):
            return {ref: sha for ref, sha in loose.items() if sha}
        raw = self.run("for-each-ref", "--format=%(objectname) %(refname)", *refs).stdout
        wanted = set(refs)
        found = {}
        for line in raw.splitlines():
            sha, _, name = line.partition(" ")
            if name in wanted:  # for-each-ref also matches refs below a given name
                found[name] = sha
        return found

    def _loose_ref(self, ref: str) -> str | None:
        if not ref.startswith("refs/") or ".." in ref.split("/"):
            return None
        try:
            sha = (self.git_dir / ref).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return sha if OBJECT_NAME.fullmatch(sha) else None

    def may_have_stashes(self) -> bool:
        """False only when surely no stash exists (no refs/stash, loose or packed): `stash list` is skipped."""
        if (self.git_dir / "reftable").exists() or (self.git_dir / "refs" / "stash").exists():
            return True
        try:
            return b" refs/stash\n" in (self.git_dir / "packed-refs").read_bytes()
        except FileNotFoundError:
            return False
        except OSError:
            return True

    def status_paths(self) -> list[str]:
        """Every changed, deleted or untracked path (untracked folders listed file by file)."""
        # No optional locks: status may run beside a fetch (workspace step), and must not write the index.
        raw = self.run("--no-optional-locks", "status", "--porcelain=v1", "-z", "--untracked-files=all").stdout
        paths: list[str] = []
        entries = iter(raw.split("\0"))
        for entry in entries:
            if not entry:
                continue
            code, path = entry[:2], entry[3:]
            paths.append(path)
            if "R" in code or "C" in code:
                next(entries, None)  # the rename's source path follows; the new path is what changed
        return paths

    def is_dirty(self) -> bool:
        return bool(self.status_paths())

    def commit_everything(self, message_for: Callable[[list[str]], str]) -> list[str]:
        """Stage everything (tracked and untracked, ignores respected) and commit with the message made
        from the staged files; returns those files (none: nothing changed, nothing committed)."""
        self.run("add", "--all")
        files = self.staged_paths()
        if files:
            self.run("commit", "--quiet", "--no-verify", "--cleanup=verbatim", "--file", "-", stdin=message_for(files))
        return files

    def staged_paths(self) -> list[str]:
        raw = self.run("diff", "--cached", "--name-only", "-z", "--no-renames").stdout
        return [p for p in raw.split("\0") if p]

    def default_remote_branch(self) -> str | None:
        """The remote's default branch (origin/HEAD), learning it from the remote when unknown."""
        ref = self.run("symbolic-ref", "--quiet", "refs/remotes/origin/HEAD", ok_codes=(0, 1)).stdout.strip()
        if not ref:
            self.run("remote", "set-head", "origin", "--auto", credentials=True, ok_codes=range(256))
            ref = self.run("symbolic-ref", "--quiet", "refs/remotes/origin/HEAD", ok_codes=(0, 1)).stdout.strip()
        return ref.removeprefix("refs/remotes/origin/") or None

    def commits_with_trailer(
        self, name: str, value: str, rev: str = "HEAD", limit: int = 200, skip_subject_prefix: str | None = None
    ) -> list[str]:
        """Commits (newest first) within the last `limit` of rev whose trailer `name` equals value."""
        raw = self.run(
            "log",
            f"-{limit}",
            f"--format=%H%x00%s%x00%(trailers:key={name},valueonly,separator=%x01)",
            rev,
            ok_codes=(0, 128),
        ).stdout
        found = []
        for line in raw.splitlines():
            sha, _, rest = line.partition("\0")
            subject, _, values = rest.partition("\0")
            if skip_subject_prefix and subject.startswith(skip_subject_prefix):
                continue
            if value in (v.strip() for v in values.split("\x01")):
                found.append(sha)
        return found

    def files_in(self, commit: str) -> list[str]:
        raw = self.out("show", "--name-only", "--format=", "-z", "--no-renames", commit)
        return [p for p in raw.split("\0") if p]
