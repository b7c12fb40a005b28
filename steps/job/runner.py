"""Running code we did not write (the agent, `npm ci`, the site's build) as a job.

Each layer works where the host allows it and says when it does not (`Containment.layers`):
- the job identity (steps/job/identity.py): needs root; elsewhere jobs run as the worker's own user;
- the kernel sandbox (steps/job/sandbox.py, bubblewrap): needs user namespaces (`SANDBOX=auto|required|off`);
  writes only to the checkout, the job's home and what the step names, a fresh /proc, and the network
  only to the model API, the npm registry and `SANDBOX_ALLOWED_DOMAINS`.
Whatever the layers, the job gets no credential of ours (shell.scrubbed_env), and when its command
returns nothing of the job is left running: with an identity, every process of that uid is ended.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from steps.job import access, sandbox
from steps.job.identity import FIRST_ID, JOB_UMASK, JobIdentity, available, identity_for
from steps.processes import shell
from supervisor.common import proc_scan, proctree

log = logging.getLogger("steps.job")
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Containment:
    """What this worker can do for its jobs, found once at start-up."""

    identity: bool
    sandbox: bool
    sandbox_off_reason: str | None = None

    def layers(self) -> dict[str, str]:
        """Each layer, "on" or why it is off: the start-up log line and `bin/status`."""
        return {
            "jobIdentity": "on" if self.identity else "off: not running as root, jobs run as this user",
            "gitOutOfReach": "on",
            "kernelSandbox": "on" if self.sandbox else f"off: {self.sandbox_off_reason}",
        }


# Tests, operator scripts and the local watcher: code runs as whoever runs them, as before.
UNCONFINED = Containment(identity=False, sandbox=False, sandbox_off_reason="not set up (outside a worker)")


# The sandbox is probed as a uid that is not root's, as a job's would be.
PROBE_UID = FIRST_ID - 1


def find_containment(setting: str) -> Containment:
    """`setting` is SANDBOX: off, auto or required (the caller refuses to start when required is missing)."""
    identity = available()
    if setting == "off":
        return Containment(identity, False, "SANDBOX=off")
    probe_id = PROBE_UID if identity else None
    reason = sandbox.probe(probe_id, probe_id)
    return Containment(identity, reason is None, reason)


def model_endpoints(env: Mapping[str, str]) -> tuple[str, ...]:
    """Where the agent's model lives: ANTHROPIC_BASE_URL's host (and port), else Anthropic's API; Bedrock's."""
    found = []
    base = env.get("ANTHROPIC_BASE_URL")
    if base:
        parts = urlsplit(base)
        if parts.hostname:
            found.append(f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname)
    else:
        found.append("api.anthropic.com")
    if env.get("CLAUDE_CODE_USE_BEDROCK") == "1":
        region = env.get("AWS_REGION", "us-east-1")
        found += [f"bedrock-runtime.{region}.amazonaws.com", f"bedrock.{region}.amazonaws.com"]
    return tuple(found)


NPM_REGISTRY = "registry.npmjs.org"


def npm_registries(env: Mapping[str, str]) -> tuple[str, ...]:
    registry = env.get("npm_config_registry") or env.get("NPM_CONFIG_REGISTRY")
    host = urlsplit(registry).hostname if registry else None
    return (host,) if host else (NPM_REGISTRY,)


@dataclass
class JobRunner:
    """Runs a workspace's jobs under the layers this worker has."""

    containment: Containment
    checkout: Path
    workspace_path: str
    allowed_domains: tuple[str, ...] = ()
    identity: JobIdentity | None = None

    @classmethod
    def for_checkout(
        cls,
        containment: Containment,
        checkout: Path,
        workspace_path: str,
        allowed_domains: Sequence[str] = (),
        id_range: tuple[int, int] = (FIRST_ID, FIRST_ID + 999_999),
    ) -> JobRunner:
        identity = identity_for(checkout, workspace_path, id_range) if containment.identity else None
        return cls(containment, checkout, workspace_path, tuple(allowed_domains), identity)

    # Getting the workspace ready for the job ----------------------------------------------------

    def prepare_workspace(self) -> None:
        """The folders on the way to the checkout, the job's home, and the checkout shared with the job."""
        if self.identity is None:
            return
        self.end_leftovers()  # what a gone worker's job left running
        os.umask(JOB_UMASK)  # what our git writes into the checkout from now on, the job's group may edit
        access.pass_through(self.checkout.parent, Path(self.workspace_path))
        access.prepare_home(self.identity)
        if self.checkout.is_dir():
            access.hand_over(self.checkout, self.identity)

    def prepare_clone_folder(self, staging: Path) -> None:
        if self.identity is not None:
            access.shared_folder(staging, self.identity)

    # Running ---------------------------------------------------------------------------------------

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        job_env = dict(env)
        if self.identity is not None:
            home = str(self.identity.home)
            job_env.update(HOME=home, TMPDIR=home, USER=f"job{self.identity.uid}", LOGNAME=f"job{self.identity.uid}")
            job_env.pop("XDG_CONFIG_HOME", None)
            job_env.pop("XDG_CACHE_HOME", None)
        return job_env

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        network: Sequence[str] = (),
        npm: bool = True,
        writable: Sequence[Path] = (),
        end_leftovers: bool = True,
        **options: Any,
    ) -> shell.CommandResult:
        """Run argv as the job (cwd: the checkout). In the sandbox it reaches `network`, the npm registry
        (unless `npm=False`) and SANDBOX_ALLOWED_DOMAINS, and writes `writable` beyond the checkout and the
        job's home. `end_leftovers=False`: the caller ends (and reports) what the job left running."""
        job_env = self.environment(env)
        preexec = self.identity.preexec() if self.identity is not None else None
        try:
            allowed = (*network, *(npm_registries(job_env) if npm else ()), *self.allowed_domains)
            with self._sandboxed(argv, allowed, writable) as (wrapped, sandbox_env):
                result = shell.run(
                    wrapped, cwd=self.checkout, env={**job_env, **sandbox_env}, preexec=preexec, **options
                )
        except (shell.CommandFailed, shell.CommandTimedOut):
            if end_leftovers:
                self.end_leftovers()
            raise
        # (Interrupted, we leave: the supervisor's ladder is ending the tree, and the next worker in this
        # workspace ends whatever of the job is left before it touches the checkout.)
        if end_leftovers:
            self.end_leftovers()
        return result

    @contextlib.contextmanager
    def spawned(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        network: Sequence[str] = (),
        launch: Callable[[Callable[[], Any]], Any] = lambda start: start(),
        **popen: Any,
    ) -> Iterator[subprocess.Popen[bytes]]:
        """argv started as the job and left running for the block (a warm build server); its sandbox's
        egress lasts as long. On leaving, whatever of it is left is killed. It dies with the thread that
        started it (PR_SET_PDEATHSIG, as bwrap's --die-with-parent: it follows the thread, not the
        process), so `launch` runs the start on a thread that lives as long as the process should."""
        job_env = self.environment(env)
        become = self.identity.preexec() if self.identity is not None else None

        def preexec() -> None:  # it dies with the thread that started it, sandbox or not
            if become is not None:
                become()
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)

        allowed = (*network, *self.allowed_domains)
        with self._sandboxed(argv, allowed, ()) as (wrapped, sandbox_env):
            process = launch(
                lambda: subprocess.Popen(
                    wrapped,
                    cwd=self.checkout,
                    env={**job_env, **sandbox_env},
                    preexec_fn=preexec,
                    start_new_session=True,  # its own session: ending it never reaches whoever started it
                    **popen,
                )
            )
            try:
                yield process
            finally:
                proctree.end_tree(proctree.snapshot(process.pid), grace=0, first_signal=signal.SIGKILL)
                process.wait()

    @contextlib.contextmanager
    def _sandboxed(
        self, argv: Sequence[str], allowed: Sequence[str], writable: Sequence[Path]
    ) -> Iterator[tuple[list[str], dict[str, str]]]:
        if not self.containment.sandbox:
            yield list(argv), {}
            return
        uid = self.identity.uid if self.identity else None
        gid = self.identity.gid if self.identity else None
        folders = [self.checkout, *writable]
        if self.identity is not None:
            folders.append(self.identity.home)
        box = sandbox.Sandbox(
            writable=tuple(folders),
            hidden=tuple(p for p in (Path(self.workspace_path), Path("/run"), Path("/root")) if p.is_dir()),
            allowed=tuple(dict.fromkeys(allowed)),
            uid=uid,
            gid=gid,
        )
        sockets = Path(tempfile.mkdtemp(prefix="webordinary-sandbox-"))
        try:
            with box.started(sockets) as started:
                yield started.wrap(list(argv), cwd=self.checkout), dict(started.env)
        finally:
            shutil.rmtree(sockets, ignore_errors=True)

    def end_leftovers(self) -> list[str]:
        """End every process of the job identity (a daemon the build double-forked, a server the agent left):
        nothing the job started outlives its step, whatever tree or session it escaped to."""
        if self.identity is None:
            return []
        uid = self.identity.uid
        found: dict[int, float] = {}
        names: list[str] = []
        for proc in _still_there(uid, proc_scan.pids_of_uid(uid)):
            with contextlib.suppress(psutil.Error):
                found[proc.pid] = proc.create_time()
                names.append(" ".join(proc.cmdline()[:3])[:80] or proc.name() or str(proc.pid))
        if found:
            log.warning("ending processes the job left running", extra={"processes": names[:20]})
            proctree.end_tree(found, grace=1.0, first_signal=signal.SIGTERM, term_grace=1.0, reap_except=set)
        return names


EXITING_WAIT_SECONDS = 0.5


def _still_there(uid: int, pids: list[int]) -> list[psutil.Process]:
    """The processes of `uid` among pids that are not on their way out.

    A zombie is gone already (bwrap's helpers wait for init to reap them). A process with no command line
    is exiting (the kernel has released its memory): the sandbox's own bwrap, a moment after the command
    it ran returned. It is given EXITING_WAIT_SECONDS to finish before it counts as left running."""
    alive: list[psutil.Process] = []
    exiting: list[psutil.Process] = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            uids = proc.uids()
            if uid not in (uids.real, uids.effective, uids.saved) or proc.status() == psutil.STATUS_ZOMBIE:
                continue  # the pid was reused since the scan, or it is a zombie
            (alive if proc.cmdline() else exiting).append(proc)
    deadline = time.monotonic() + EXITING_WAIT_SECONDS
    while exiting and time.monotonic() < deadline:
        time.sleep(0.01)
        exiting = [proc for proc in exiting if _running(proc)]
    return alive + exiting


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
