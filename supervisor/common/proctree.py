"""Ending a whole process tree so that nothing of it survives.

npm does not forward signals, and Claude Code's shells live in sessions of their own, so signalling
one pid or one group is not enough. We snapshot the tree with psutil *before* signalling (a child
whose parent dies is re-parented out of the tree), signal every process in the snapshot plus every
member of the root's session and group, escalate SIGINT → SIGTERM → SIGKILL, and re-scan until none
is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable

import psutil

log = logging.getLogger("supervisor.proctree")

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Orphaned descendants are re-parented to us instead of init, so a re-scan still finds them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def hide_environment() -> bool:
    """Make /proc/<our pid>/environ (and mem, cwd…) unreadable to other processes of the same user, such
    as a command the agent runs: our environment holds the git token and the deploy's credentials.
    Programs we start get their own, ordinary /proc files (the flag resets on exec)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(sig: signal.Signals, expected_parent: int = 0) -> None:
    """Ask the kernel to send `sig` when our parent dies (a supervisor killed -9 leaves no worker)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if expected_parent and os.getppid() != expected_parent:
        os.kill(os.getpid(), sig)  # the parent died before the request took effect


def _same_process(proc: psutil.Process, created: float) -> bool:
    """Guards against pid reuse: a pid counts only while its creation time is the one we saw."""
    try:
        return abs(proc.create_time() - created) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def snapshot(root_pid: int, *, include_root: bool = True) -> dict[int, float]:
    """pid → creation time of root, its descendants, and every process in its session or group."""
    found: dict[int, float] = {}
    try:
        root = psutil.Process(root_pid)
        members = [root, *root.children(recursive=True)] if include_root else root.children(recursive=True)
    except psutil.NoSuchProcess:
        members = []
    # A worker is started as a session leader, so its sid/pgid equal its pid; setsid'd grandchildren
    # are caught through the parent links above, daemonised ones that kept the session through this.
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            pid = proc.pid
            if pid == os.getpid():
                continue
            if os.getsid(pid) == root_pid or os.getpgid(pid) == root_pid:
                members.append(proc)
    for proc in members:
        with contextlib.suppress(psutil.Error):
            if proc.pid != os.getpid() and (include_root or proc.pid != root_pid):
                found[proc.pid] = proc.create_time()
    return found


def _extend(tree: dict[int, float]) -> None:
    """Add the descendants of every known member (children started since the last look)."""
    for pid, created in list(tree.items()):
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if _same_process(proc, created):
                for child in proc.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        tree.setdefault(child.pid, child.create_time())


def alive(tree: dict[int, float]) -> list[int]:
    living = []
    for pid, created in tree.items():
        with contextlib.suppress(psutil.Error):
            if _same_process(psutil.Process(pid), created):
                living.append(pid)
    return living


def _signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def creation_time(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def adopted_orphans(keep: set[int], children: list[psutil.Process] | None = None) -> dict[int, float]:
    """Our children that are not workers, with their descendants. Workers are subreapers themselves,
    so a process re-parented to us can only come from a worker that died: it belongs to no one.
    `children`: our children as just listed (one scan of the process table serves several questions)."""
    found: dict[int, float] = {}
    for child in psutil.Process().children() if children is None else children:
        with contextlib.suppress(psutil.Error):
            if child.pid not in keep and child.status() != psutil.STATUS_ZOMBIE:
                found.update(snapshot(child.pid))
    return found


def reap_orphans(keep: set[int], children: list[psutil.Process] | None = None) -> int:
    """Collect zombie children we inherited as a subreaper, leaving `keep` (workers whose exit status
    their own waiter collects) alone. Returns how many were reaped. `children`: as in adopted_orphans."""
    reaped = 0
    for child in psutil.Process().children() if children is None else children:
        with contextlib.suppress(psutil.Error, ChildProcessError):
            if child.pid not in keep and child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
                reaped += 1
    return reaped


def end_tree(
    tree: dict[int, float],
    *,
    grace: float,
    first_signal: signal.Signals = signal.SIGINT,
    term_grace: float = 2.0,
    poll: float = 0.02,
    reap_except: Callable[[], set[int]] | None = None,
) -> dict[str, int]:
    """SIGINT → (grace) → SIGTERM → (term_grace) → SIGKILL, re-scanning until nothing is left.

    With `reap_except`, zombies we inherited are collected on the way, except the pids it names
    (children whose exit status another thread waits for). Returns how many processes each signal
    was sent to; the caller logs it.
    """
    sent: dict[str, int] = {}
    stages = [(first_signal, grace), (signal.SIGTERM, term_grace), (signal.SIGKILL, 5.0)]
    if first_signal == signal.SIGTERM:
        stages = stages[1:]
    for sig, wait_for in stages:
        _extend(tree)
        living = alive(tree)
        if not living:
            break
        _signal_all(living, sig)
        sent[sig.name] = len(living)
        deadline = time.monotonic() + wait_for
        while time.monotonic() < deadline:
            if reap_except is not None:
                reap_orphans(keep=reap_except())
            _extend(tree)
            if not alive(tree):
                break
            time.sleep(poll)
    if reap_except is not None:
        reap_orphans(keep=reap_except())
    survivors = alive(tree)
    if survivors:
        log.error("processes survived SIGKILL", extra={"pids": survivors})
    return sent


def terminate_tree(root_pid: int, *, grace: float = 2.0, first_signal: signal.Signals = signal.SIGTERM) -> None:
    """For a worker's own command (timeout or interrupt): snapshot and end the tree rooted at root_pid."""
    tree = snapshot(root_pid)
    if tree:
        end_tree(tree, grace=grace, first_signal=first_signal, term_grace=2.0)


def end_descendants(*, grace: float = 2.0) -> list[str]:
    """End every process below this one: what a finished command left running (a server the agent
    started in the background, re-parented to us as the subreaper). Returns their names."""
    tree = snapshot(os.getpid(), include_root=False)
    names = []
    for pid in alive(tree):
        with contextlib.suppress(psutil.Error):
            names.append(" ".join(psutil.Process(pid).cmdline()[:3])[:80] or str(pid))
    if names:
        end_tree(tree, grace=grace, first_signal=signal.SIGTERM, term_grace=grace, reap_except=set)
    return names
