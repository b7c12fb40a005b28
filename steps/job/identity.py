"""The job identity: the unprivileged uid (and group) that a workspace's agent, npm and build run as.

Not the worker's, not the supervisor's, and one per workspace, so a job cannot read another process's
environment or memory (`/proc/<pid>/environ` needs the same uid), signal it, or touch another
workspace's checkout, the supervisor's records or the repository beside the checkout. Taking it needs
root (the image starts as root; Docker's default capabilities include SETUID/SETGID, and Fargate needs
nothing added); a worker that is not root runs jobs as itself and says so (`layers()`).

The uid is stable for a workspace: kept in `{WORKSPACE_PATH}/.supervisor/job-ids.json` (under a lock,
so containers sharing the volume agree), first chosen from a hash of the workspace and WORKSPACE_PATH,
the next free one on a collision. Files the job makes keep that uid across restarts and containers.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from supervisor.common.files import private_folder, write_atomic

log = logging.getLogger("steps.job.identity")

FIRST_ID = 200_000  # JOB_UID_RANGE's default start: far above any uid an image or a host gives its own users
# Files the job and our git make in a checkout: the job's group may write them, nobody else may look.
JOB_UMASK = 0o007
PR_SET_NO_NEW_PRIVS = 38


@dataclass(frozen=True)
class JobIdentity:
    uid: int
    gid: int
    home: Path  # HOME of the job: npm's cache, the tools' dot files

    def preexec(self) -> Callable[[], None]:
        """What the forked child does before exec: become the job, for good (no setuid binary helps back)."""
        uid, gid = self.uid, self.gid

        def become_job() -> None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            os.umask(JOB_UMASK)
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)

        return become_job

    def owns(self, path: Path) -> None:
        """chown `path` (not followed) to the job."""
        os.chown(path, self.uid, self.gid, follow_symlinks=False)


def available() -> bool:
    """Whether jobs can run as their own identity here (dropping to another uid needs root)."""
    return os.geteuid() == 0


def workspace_key(checkout: Path, workspace_path: str) -> str:
    return checkout.relative_to(workspace_path).as_posix()


@contextlib.contextmanager
def _registry(workspace_path: str) -> Iterator[dict[str, int]]:
    """The workspace → uid map, locked for the caller; written back when the caller changed it."""
    folder = private_folder(Path(workspace_path, ".supervisor"))
    path = folder / "job-ids.json"
    with open(folder / "job-ids.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            loaded = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):
            loaded = {}
        ids = {k: v for k, v in loaded.items() if isinstance(v, int)} if isinstance(loaded, dict) else {}
        before = dict(ids)
        yield ids
        if ids != before:
            write_atomic(path, json.dumps(ids, sort_keys=True))


def _first_choice(workspace_path: str, key: str) -> int:
    """Where the search for a free uid starts. The registry keeps uids apart within one WORKSPACE_PATH
    only; the path is in the hash so that two supervisors of one host with workspaces of their own
    (two checkouts of `acme/u1/site` under different paths) do not start from the same uid: a shared
    uid would let one's jobs read the other's files, and each would end the other's jobs as its own."""
    seed = f"{os.path.realpath(workspace_path)}\0{key}".encode()
    return int.from_bytes(hashlib.sha256(seed).digest()[:8], "big")


def identity_for(checkout: Path, workspace_path: str, id_range: tuple[int, int]) -> JobIdentity:
    """The workspace's job identity, chosen on first use from JOB_UID_RANGE."""
    key = workspace_key(checkout, workspace_path)
    first, last = id_range
    count = last - first + 1
    with _registry(workspace_path) as ids:
        uid = ids.get(key)
        if uid is None or not first <= uid <= last:
            taken = {value for name, value in ids.items() if name != key}
            start = _first_choice(workspace_path, key) % count
            free = (first + (start + n) % count for n in range(count))
            uid = next((candidate for candidate in free if candidate not in taken), None)
            if uid is None:
                raise RuntimeError(f"JOB_UID_RANGE {first}-{last} has no free uid left for another workspace")
            ids[key] = uid
            log.info("new job identity for the workspace", extra={"uid": uid})
    home = Path(workspace_path, ".jobs", str(uid))
    return JobIdentity(uid=uid, gid=uid, home=home)


def build_uids(id_range: tuple[int, int]) -> range:
    """The uids of warm build servers (steps/warm): a range as large as JOB_UID_RANGE, just above it."""
    first, last = id_range
    count = last - first + 1
    return range(last + 1, last + 1 + count)


def build_identity_for(job: JobIdentity, workspace_path: str, id_range: tuple[int, int]) -> JobIdentity:
    """The identity of the workspace's warm build server (steps/warm): the job's group, so it reads and
    writes the checkout as the build would, and a uid of its own (build_uids), so the job can neither
    signal nor trace it, and ending the job's processes leaves it alone."""
    uid = build_uids(id_range)[job.uid - id_range[0]]
    return JobIdentity(uid=uid, gid=job.gid, home=Path(workspace_path, ".jobs", str(uid)))
