"""A kernel sandbox around a job's command (bubblewrap), where the host allows user namespaces.

The command sees the whole file system read-only except the `writable` paths, an empty folder in place
of each `hidden` path, a fresh /tmp, /dev and /proc (its own PID namespace: no process of the host),
and a network namespace with only `lo`. What it may reach goes through steps/job/egress.py in the
worker: listed loopback ports of the host at the same address, and other destinations through an
allowlisting proxy (the environment names it, as npm and Claude Code expect).

The process that execs bwrap already is the job's uid (dropped before exec), so bwrap runs
unprivileged and makes its own user namespace. `probe` says whether that works here at all: not in
a Docker container with the default seccomp profile, nor on Fargate (docs: DESIGN "Containment facts").
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from steps.job.egress import Allowlist, Egress, split_host_port

NETBRIDGE = Path(__file__).resolve().with_name("netbridge.py")
# This project's folder (steps/job/ is two below it): under /tmp (a clone that CI or a developer made
# there), the sandbox's fresh /tmp would hide the bridge, and the agent and build a test names from it.
CODE_ROOT = NETBRIDGE.parents[2]
TMP = Path("/tmp")  # noqa: S108 (the host's, replaced inside the sandbox)
PROXY_PORT = 3128  # inside the sandbox only: nothing else listens there
NO_PROXY = "127.0.0.1,localhost,::1"
PROBE_TIMEOUT = 20.0

# (uid, gid) → (why no sandbox, or None; the Python that runs the bridge as that identity)
_probed: dict[tuple[int | None, int | None], tuple[str | None, str | None]] = {}
_probe_lock = threading.Lock()


def _base_argv() -> list[str]:
    # The worker ends a job by signalling every process of its tree: SIGINT first, so the command can
    # stop by itself. bwrap would die of it at once and take the whole sandbox down with SIGKILL
    # (--die-with-parent, and the end of PID 1 of the namespace), so it ignores these; SIGKILL still ends it.
    ignore = ["--ignore-signal=INT", "--ignore-signal=TERM", "--ignore-signal=HUP"]
    return [
        shutil.which("env") or "/usr/bin/env",
        *ignore,
        shutil.which("bwrap") or "bwrap",
        "--die-with-parent",
        "--unshare-all",  # user, ipc, pid, net, uts, cgroup
        *("--ro-bind", "/", "/"),
        *("--dev", "/dev"),
        *("--proc", "/proc"),
        *("--tmpfs", "/tmp"),  # noqa: S108 (a fresh, empty /tmp inside the sandbox)
        *(("--ro-bind", str(CODE_ROOT), str(CODE_ROOT)) if CODE_ROOT.is_relative_to(TMP) else ()),
    ]


def _drop_to(uid: int | None, gid: int | None) -> Callable[[], None] | None:
    """A preexec function that becomes the job's identity, when we are root and have one."""
    if uid is None or os.geteuid() != 0:
        return None

    def drop() -> None:
        os.setgroups([])
        if gid is not None:
            os.setgid(gid)
        os.setuid(uid)

    return drop


def probe(uid: int | None = None, gid: int | None = None) -> str | None:
    """None when a sandbox runs here as that uid/gid, else why not. Asked once per identity and process."""
    return _probe_once(uid, gid)[0]


def bridge_python(uid: int | None = None, gid: int | None = None) -> str:
    """The interpreter that runs netbridge.py as that identity (it needs the standard library only)."""
    reason, python = _probe_once(uid, gid)
    if python is None:
        raise RuntimeError(f"no sandbox here: {reason}")
    return python


def _probe_once(uid: int | None, gid: int | None) -> tuple[str | None, str | None]:
    with _probe_lock:
        if (uid, gid) not in _probed:
            _probed[uid, gid] = _probe(uid, gid)
        return _probed[uid, gid]


def _probe(uid: int | None, gid: int | None) -> tuple[str | None, str | None]:
    if shutil.which("bwrap") is None:
        return "bwrap not installed", None
    error = _fails([*_base_argv(), "--", "true"], uid, gid)
    if error is not None:
        return f"user namespaces unavailable: {error}", None
    # Ours first; but a venv or pyenv under a home the job may not enter is of no use to it.
    candidates = [sys.executable, os.path.realpath(sys.executable), shutil.which("python3", path=os.defpath)]
    for python in dict.fromkeys(filter(None, candidates)):
        error = _fails([*_base_argv(), "--", python, "-I", str(NETBRIDGE), "--", "true"], uid, gid)
        if error is None:
            return None, python
    return f"the job cannot run the network bridge: {error}", None


def _fails(argv: list[str], uid: int | None, gid: int | None) -> str | None:
    """None when argv exits 0 as that identity, else its last line of stderr."""
    try:
        done = subprocess.run(
            argv,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            preexec_fn=_drop_to(uid, gid),
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return str(error)
    if done.returncode == 0:
        return None
    return (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]


def is_loopback_literal(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Sandbox:
    writable: tuple[Path, ...] = ()  # bound read-write at the same path
    hidden: tuple[Path, ...] = ()  # an empty tmpfs in its place (a writable path inside stays visible)
    allowed: tuple[str, ...] = ()  # `host`, `host:port`, `*.host`; a loopback IP with port is forwarded
    uid: int | None = None
    gid: int | None = None

    def forwards(self) -> list[tuple[str, int]]:
        found = []
        for entry in self.allowed:
            host, port = split_host_port(entry)
            if is_loopback_literal(host):
                if port is None:
                    raise ValueError(f"a loopback destination needs a port: {entry}")
                found.append((host, port))
        return found

    def proxied(self) -> list[str]:
        return [entry for entry in self.allowed if not is_loopback_literal(split_host_port(entry)[0])]

    @contextlib.contextmanager
    def started(self, socket_dir: Path) -> Iterator[Started]:
        """The egress side for one command, its sockets in socket_dir (which the job must be able to
        reach on the host: bwrap binds it into the sandbox as the job's uid; a unix socket's path has at
        most 107 bytes). All gone on exit."""
        forwards = self.forwards()
        owner = None
        if self.uid is not None and os.geteuid() == 0:
            owner = (self.uid, -1 if self.gid is None else self.gid)
        created = not socket_dir.exists()
        socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        socket_dir.chmod(0o700)
        if owner is not None:
            os.chown(socket_dir, *owner)
        if not self.allowed:  # no network at all: only the sandbox's own loopback, no bridge to start
            try:
                yield Started(self, socket_dir, (), {})
            finally:
                if created:
                    shutil.rmtree(socket_dir, ignore_errors=True)
            return
        egress = Egress(owner)
        try:
            bridge = []
            for index, (host, port) in enumerate(forwards):
                path = socket_dir / f"f{index}.sock"
                egress.forward(path, host, port)
                bridge.append(f"{f'[{host}]' if ':' in host else host}:{port}={path}")
            taken = {port for _, port in forwards}
            proxy_port = next(port for port in range(PROXY_PORT, 65536) if port not in taken)
            egress.proxy(socket_dir / "proxy.sock", Allowlist(self.proxied()))
            bridge.append(f"127.0.0.1:{proxy_port}={socket_dir / 'proxy.sock'}")
            yield Started(self, socket_dir, tuple(bridge), proxy_env(proxy_port))
        finally:
            egress.close()  # its sockets' files too
            if created:
                shutil.rmtree(socket_dir, ignore_errors=True)


def proxy_env(port: int) -> dict[str, str]:
    proxy = f"http://127.0.0.1:{port}"
    env = {name: proxy for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")}
    env |= {"NO_PROXY": NO_PROXY, "no_proxy": NO_PROXY}
    env |= {"npm_config_proxy": proxy, "npm_config_https_proxy": proxy}
    return env


@dataclass(frozen=True)
class Started:
    sandbox: Sandbox
    socket_dir: Path
    bridge: tuple[str, ...]  # netbridge.py's ADDRESS:PORT=SOCKET arguments
    env: dict[str, str]  # merge into the command's environment

    def wrap(self, argv: list[str], *, cwd: str | os.PathLike[str] | None = None) -> list[str]:
        """argv run in the sandbox. With `cwd`, bwrap fails when that folder is not there inside (it
        would silently start in $HOME otherwise); without, the command starts where it was started."""
        mounts = [(path, "--tmpfs") for path in self.sandbox.hidden if path.exists()]
        mounts += [(path, "--bind") for path in (*self.sandbox.writable, self.socket_dir)]
        # Parents before children, so a deeper path wins whichever list it is in; a tmpfs before a
        # bind of the same path.
        mounts.sort(key=lambda mount: (len(mount[0].parts), mount[1] == "--bind"))
        options: list[str] = []
        for path, flag in mounts:
            options += [flag, str(path)] if flag == "--tmpfs" else [flag, str(path), str(path)]
        # A hidden folder stays empty: read-only once the binds inside it have their mount points, so a
        # write there fails as it would on the real folder instead of landing in a throwaway tmpfs.
        options += [arg for path, flag in mounts if flag == "--tmpfs" for arg in ("--remount-ro", str(path))]
        if cwd is not None:
            options += ["--chdir", str(cwd)]
        if not self.bridge:  # env puts back the signals bwrap's env ignored (the bridge does so otherwise)
            restore = [f"--default-signal={name}" for name in ("INT", "TERM", "HUP")]
            return [*_base_argv(), *options, "--", "/usr/bin/env", *restore, *argv]
        python = bridge_python(self.sandbox.uid, self.sandbox.gid)
        return [*_base_argv(), *options, "--", python, "-I", str(NETBRIDGE), *self.bridge, "--", *argv]
