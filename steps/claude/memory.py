"""The agent's state beside the workspace: each chat thread's own CLI folder and conversation.

`{WORKSPACE_PATH}/.agent/{clientId}/{userId}/{repo}/` holds
- `threads/{branch}/claude/`: the thread's CLAUDE_CONFIG_DIR, where the CLI keeps its transcript (so
  `--resume` finds it), and `threads/{branch}/tmp/`: its CLAUDE_CODE_TMPDIR;
- `sessions/{branch}.json`: the Claude session id of the thread's last command (our record);
  `sessions/{branch}.undone.json`: what `/undo` took back since the thread's agent last ran (undo_note.py).
It is outside every checkout (client ids cannot start with "."), so it is never committed or deployed,
and lives as long as the workspace volume does: a restart keeps every chat's memory.

With a job identity (steps/job) a thread's folder is lent to the job only while its agent runs and
taken back after, so a job never reads another thread's conversation, and `sessions/` is never the
job's. Before the per-thread folders, one `claude/` served every thread: a thread's transcript is
copied from there on first use, so its conversation carries on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from steps.claude.undo_note import UndoneChange
from steps.job.access import PASS_THROUGH
from steps.job.identity import JobIdentity
from supervisor.common.files import write_atomic
from supervisor.contract.command import Command

log = logging.getLogger("steps.claude.memory")
UNDONE_KEPT = 20  # undos noted for one thread's next run; the oldest go first


def file_name(branch: str) -> str:
    """One file or folder name per branch: `thread-…` names as they are (made of [A-Za-z0-9._-]), any
    other with its "/" (and "%") escaped, so `feature/x` is never a folder inside `feature`'s."""
    return quote(branch, safe="") if not branch.startswith("thread-") else branch


@dataclass(frozen=True)
class AgentState:
    root: Path
    branch: str  # `thread-…`, or a branch a task-shape message asked for (may hold "/")

    @classmethod
    def for_command(cls, workspace_path: str, command: Command) -> AgentState:
        root = Path(workspace_path, ".agent", command.client_id, command.user_id, command.repo_name)
        return cls(root, command.branch)

    @property
    def thread_dir(self) -> Path:
        return self.root / "threads" / file_name(self.branch)

    @property
    def config_dir(self) -> Path:
        return self.thread_dir / "claude"

    @property
    def tmp_dir(self) -> Path:
        return self.thread_dir / "tmp"

    def prepare(self) -> None:
        for folder in (self.config_dir, self.tmp_dir, self.root / "sessions"):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "sessions", 0o700)
        self._carry_over_shared_transcript()

    def _session_file(self, branch: str) -> Path:
        return self.root / "sessions" / f"{file_name(branch)}.json"

    def session_of(self, branch: str) -> str | None:
        """The session id of the thread's last command, or None for a new thread (or an unreadable record)."""
        old_place = self.root / "threads" / f"{file_name(branch)}.json"
        for path in (self._session_file(branch), old_place):  # ours, then the old place
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            session = record.get("sessionId") if isinstance(record, dict) else None
            return session if isinstance(session, str) and session else None
        return None

    def remember(self, branch: str, session_id: str, command_id: str) -> None:
        record = {"sessionId": session_id, "commandId": command_id, "updatedAt": time.time()}
        write_atomic(self._session_file(branch), json.dumps(record))

    def _undone_file(self, branch: str) -> Path:
        return self.root / "sessions" / f"{file_name(branch)}.undone.json"

    def note_undone(self, branch: str, change: UndoneChange) -> None:
        """Keep, for the thread's next agent run, that an undo took back one of its changes (undo_note.py)."""
        kept = self.undone_since_last_run(branch)[-(UNDONE_KEPT - 1) :]
        folder = self.root / "sessions"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self._undone_file(branch), json.dumps([c.to_record() for c in (*kept, change)]))

    def undone_since_last_run(self, branch: str) -> list[UndoneChange]:
        try:
            records = json.loads(self._undone_file(branch).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        changes = (UndoneChange.from_record(r) for r in records) if isinstance(records, list) else ()
        return [change for change in changes if change is not None]

    def forget_undone(self, branch: str) -> None:
        self._undone_file(branch).unlink(missing_ok=True)

    def _carry_over_shared_transcript(self) -> None:
        """Copy this thread's transcript from the folder all threads once shared (its first use since)."""
        shared_projects = self.root / "claude" / "projects"
        session = self.session_of(self.branch)
        if session is None or not shared_projects.is_dir() or (self.config_dir / "projects").exists():
            return
        for transcript in shared_projects.glob(f"*/{session}.jsonl"):
            if transcript.is_symlink() or not transcript.is_file():
                continue
            target = self.config_dir / "projects" / transcript.parent.name / transcript.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(transcript, target, follow_symlinks=False)
            log.info("carried the thread's conversation over to its own folder", extra={"agentSessionId": session})

    @contextlib.contextmanager
    def lent_to(self, identity: JobIdentity | None) -> Iterator[None]:
        """The thread's folder belongs to the job while the agent runs; afterwards to us again, closed."""
        if identity is None:
            yield
            return
        self._seal_other_threads()
        _chown_tree(self.thread_dir, identity.uid, identity.gid)
        for folder in (self.root.parent.parent.parent, self.root.parent.parent, self.root.parent, self.root):
            os.chmod(folder, PASS_THROUGH)  # .agent/{client}/{user}/{repo}: passed through, never listed
        os.chmod(self.root / "threads", PASS_THROUGH)
        try:
            yield
        finally:
            _chown_tree(self.thread_dir, os.geteuid(), os.getegid())
            os.chmod(self.thread_dir, 0o700)

    def _seal_other_threads(self) -> None:
        """A thread folder still lent out (its worker died mid-run) is taken back."""
        me = os.geteuid()
        for folder in (self.root / "threads").iterdir():
            info = folder.lstat()
            if stat.S_ISDIR(info.st_mode) and folder != self.thread_dir and info.st_uid != me:
                _chown_tree(folder, me, os.getegid())
                os.chmod(folder, 0o700)


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    """chown a folder and everything in it, following no link; a file with other hard links is skipped
    (it would be someone else's file too)."""
    os.chown(top, uid, gid, follow_symlinks=False)
    for folder, dirs, files in os.walk(top):
        for name in (*dirs, *files):
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISDIR(info.st_mode) or stat.S_ISLNK(info.st_mode) or info.st_nlink == 1:
                os.chown(path, uid, gid, follow_symlinks=False)
