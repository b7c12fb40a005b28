"""The job sandbox with real bwrap and real processes, as root and as a dropped uid."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from steps.job import sandbox
from steps.job.egress import Allowlist
from steps.job.sandbox import Sandbox, Started, bridge_python, probe

if shutil.which("bwrap") is None and os.environ.get("CI") != "true":
    pytest.skip("bwrap is not installed (apt-get install bubblewrap)", allow_module_level=True)

pytestmark = pytest.mark.timeout(30)

JOB_UID = 64123
IDENTITIES = [
    pytest.param(None, id="as-root"),
    pytest.param(
        JOB_UID,
        id="as-job-uid",
        marks=pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root"),
    ),
]


@pytest.fixture(params=IDENTITIES)
def uid(request: pytest.FixtureRequest) -> int | None:
    return request.param


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder the job can reach (pytest's tmp_path is under a root-only folder), not under /tmp (the
    sandbox has a /tmp of its own)."""
    path = Path(tempfile.mkdtemp(prefix="sandbox-test-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def folder(path: Path, uid: int | None) -> Path:
    """A folder the job's uid owns: only the sandbox can stop it writing there."""
    path.mkdir(parents=True)
    if uid is not None:
        os.chown(path, uid, uid)
    return path


def drop_to(uid: int | None):
    if uid is None:
        return None

    def drop() -> None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

    return drop


def run_in(started: Started, argv: list[str], uid: int | None, **kwargs) -> subprocess.CompletedProcess[str]:
    """As the worker would: the job's identity, a session of its own, the proxy's environment."""
    return subprocess.run(
        started.wrap(argv, cwd=kwargs.pop("cwd", None)),
        env={**os.environ, **started.env},
        preexec_fn=drop_to(uid),
        start_new_session=True,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
        **kwargs,
    )


def python_script(uid: int | None, code: str) -> list[str]:
    return [bridge_python(uid, uid), "-c", code]


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that echoes each connection's first line; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = server.accept()
                with client, client.makefile("rwb") as stream:
                    stream.write(stream.readline())
                    stream.flush()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.shutdown(socket.SHUT_RDWR)
    server.close()
    thread.join(timeout=5)


def test_probe_finds_a_sandbox_here(uid: int | None):
    assert probe(uid, uid) is None


def test_probe_names_a_missing_bwrap(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sandbox, "_probed", {})
    monkeypatch.setenv("PATH", "/nonexistent")
    assert probe() == "bwrap not installed"
    with pytest.raises(RuntimeError, match="bwrap not installed"):
        bridge_python()


def test_writes_only_where_writable(base: Path, uid: int | None):
    writable, other = folder(base / "writable", uid), folder(base / "other", uid)
    with Sandbox(writable=(writable,), uid=uid, gid=uid).started(base / "sockets") as started:
        done = run_in(started, ["sh", "-c", f"echo in > {writable}/file; echo out > {other}/file"], uid)
    assert (writable / "file").read_text() == "in\n"
    assert not (other / "file").exists()
    assert done.returncode != 0
    assert "Read-only file system" in done.stderr


def test_a_hidden_folder_looks_empty_but_a_writable_one_inside_shows(base: Path, uid: int | None):
    hidden = folder(base / "hidden", uid)
    (hidden / "secret").write_text("no\n")
    inside = folder(hidden / "inside", uid)
    (inside / "kept").write_text("yes\n")
    job = Sandbox(writable=(inside,), hidden=(hidden,), uid=uid, gid=uid)
    with job.started(base / "sockets") as started:
        done = run_in(started, ["sh", "-c", f"ls -A {hidden}; cat {inside}/kept; echo new > {inside}/new"], uid)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["inside", "yes"]
    assert (inside / "new").read_text() == "new\n"
    assert (hidden / "secret").read_text() == "no\n"  # hidden, not gone
    with job.started(base / "sockets") as started:  # nor writable: no throwaway copy that looks like the real one
        planted = run_in(started, ["sh", "-c", f"mkdir {hidden}/planted"], uid)
    assert planted.returncode != 0 and "Read-only file system" in planted.stderr


def test_proc_shows_no_process_of_the_host(base: Path, uid: int | None):
    with Sandbox(uid=uid, gid=uid).started(base / "sockets") as started:
        done = run_in(started, ["sh", "-c", f"ls /proc/{os.getpid()}/environ; ls /proc"], uid)
    assert f"/proc/{os.getpid()}" in done.stderr  # "No such file or directory"
    pids = [int(name) for name in done.stdout.split() if name.isdigit()]
    assert pids and max(pids) < 20, pids  # bwrap, the bridge, sh, ls: a namespace of its own


def test_an_allowed_loopback_port_is_forwarded_and_no_other(base: Path, uid: int | None, echo_server: int):
    with socket.create_server(("127.0.0.1", 0)) as other:  # listening on the host, but not allowed
        code = (
            "import socket\n"
            f"with socket.create_connection(('127.0.0.1', {echo_server})) as s:\n"
            "    s.sendall(b'hello\\n'); print(s.makefile().readline().strip())\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {other.getsockname()[1]}))\n"
            "except ConnectionRefusedError:\n"
            "    print('refused')\n"
        )
        job = Sandbox(allowed=(f"127.0.0.1:{echo_server}",), uid=uid, gid=uid)
        with job.started(base / "sockets") as started:
            done = run_in(started, python_script(uid, code), uid)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["hello", "refused"]


def test_the_proxy_reaches_listed_destinations_only(
    base: Path, uid: int | None, echo_server: int, caplog: pytest.LogCaptureFixture
):
    code = (
        "import os, socket\n"
        "proxy = int(os.environ['HTTPS_PROXY'].rsplit(':', 1)[1])\n"
        "def ask(request, then=b''):\n"
        "    with socket.create_connection(('127.0.0.1', proxy)) as s:\n"
        "        s.sendall(request)\n"
        "        stream = s.makefile('rb')\n"
        "        print(stream.readline().decode().strip())\n"
        "        if then:\n"
        "            while stream.readline().strip(): pass\n"
        "            s.sendall(then); print(stream.readline().decode().strip())\n"
        f"ask(b'CONNECT LocalHost:{echo_server} HTTP/1.1\\r\\n\\r\\n', b'tunnelled\\n')\n"
        f"ask(b'GET http://localhost:{echo_server}/page?q=1 HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n')\n"
        "ask(b'CONNECT example.invalid:443 HTTP/1.1\\r\\n\\r\\n')\n"
        f"ask(b'CONNECT localhost:{echo_server + 1} HTTP/1.1\\r\\n\\r\\n')\n"
    )
    job = Sandbox(allowed=(f"localhost:{echo_server}", "registry.npmjs.org"), uid=uid, gid=uid)
    with caplog.at_level(logging.WARNING, logger="steps.job.sandbox"), job.started(base / "sockets") as started:
        done = run_in(started, python_script(uid, code), uid)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "HTTP/1.1 200 Connection established",
        "tunnelled",
        "GET /page?q=1 HTTP/1.1",  # the echo server's answer: the request in origin-form
        "HTTP/1.1 403 Forbidden",
        "HTTP/1.1 403 Forbidden",
    ]
    refused = [record.getMessage() for record in caplog.records if record.name == "steps.job.sandbox"]
    assert refused == [
        "sandbox refused a connection to example.invalid:443",
        f"sandbox refused a connection to localhost:{echo_server + 1}",
    ]


def test_the_environment_names_the_proxy(base: Path):
    with Sandbox(allowed=("registry.npmjs.org",)).started(base / "sockets") as started:
        proxy = started.env["HTTPS_PROXY"]
        assert proxy.startswith("http://127.0.0.1:")
        for name in ("HTTP_PROXY", "https_proxy", "http_proxy", "npm_config_proxy", "npm_config_https_proxy"):
            assert started.env[name] == proxy
        assert started.env["NO_PROXY"] == started.env["no_proxy"] == "127.0.0.1,localhost,::1"


def test_with_nothing_allowed_there_is_no_network_and_no_bridge(base: Path, uid: int | None, echo_server: int):
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {echo_server}), timeout=2); print('reached')\n"
        "except OSError as error:\n"
        "    print('refused', error.errno)\n"
    )
    with Sandbox(uid=uid, gid=uid).started(base / "sockets") as started:
        assert started.env == {} and "netbridge.py" not in " ".join(started.wrap(["true"]))
        done = run_in(started, ["python3", "-c", code], uid)
    assert done.stdout.startswith("refused"), done


def test_the_exit_code_comes_through(base: Path, uid: int | None):
    with Sandbox(uid=uid, gid=uid).started(base / "sockets") as started:
        assert run_in(started, ["sh", "-c", "exit 7"], uid).returncode == 7
        assert run_in(started, ["sh", "-c", "kill -TERM $$"], uid).returncode == 128 + signal.SIGTERM
        assert run_in(started, ["/no/such/command"], uid).returncode == 127


def test_the_command_gets_default_signal_handling(base: Path, uid: int | None):
    with Sandbox(uid=uid, gid=uid).started(base / "sockets") as started:
        done = run_in(started, ["grep", "SigIgn", "/proc/self/status"], uid)
    ignored = int(done.stdout.split()[1], 16)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        assert not ignored & (1 << (sig - 1)), sig.name


def sigint_the_tree(process: subprocess.Popen[str], wanted: str) -> None:
    """Once `wanted` runs, SIGINT to every process of the tree from the host, as the worker's ladder does."""
    deadline = time.monotonic() + 10
    root = psutil.Process(process.pid)
    while not any(child.name() == wanted for child in root.children(recursive=True)):
        assert time.monotonic() < deadline, f"{wanted} never started"
        time.sleep(0.05)
    for member in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGINT)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        pytest.param("sleep 30", 128 + signal.SIGINT, id="sleep"),
        # The command may stop by itself: bwrap and the bridge do not take the sandbox down first.
        pytest.param("trap 'echo stopped > {w}/stopped; exit 3' INT; sleep 30 & wait", 3, id="trap"),
    ],
)
def test_sigint_to_the_tree_ends_the_command(base: Path, uid: int | None, command: str, expected: int):
    writable = folder(base / "writable", uid)
    with Sandbox(writable=(writable,), uid=uid, gid=uid).started(base / "sockets") as started:
        process = subprocess.Popen(
            started.wrap(["sh", "-c", command.format(w=writable)]),
            env={**os.environ, **started.env},
            preexec_fn=drop_to(uid),
            start_new_session=True,
            text=True,
        )
        try:
            sigint_the_tree(process, "sleep")
            assert process.wait(timeout=10) == expected
        finally:
            process.kill()
            process.wait()
    if expected == 3:
        assert (writable / "stopped").read_text() == "stopped\n"


def test_everything_is_gone_when_the_command_is(base: Path, echo_server: int):
    kept = folder(base / "kept", None)
    with Sandbox(allowed=(f"127.0.0.1:{echo_server}",)).started(base / "made") as made:
        assert sorted(path.name for path in made.socket_dir.iterdir()) == ["f0.sock", "proxy.sock"]
        with Sandbox().started(kept):
            pass
    assert not (base / "made").exists()
    assert kept.is_dir() and list(kept.iterdir()) == []
    assert not [thread for thread in threading.enumerate() if thread.name == "sandbox-egress"]


def test_deeper_paths_are_mounted_last(base: Path):
    outer, inner = base / "outer", base / "outer" / "inner"
    job = Sandbox(writable=(inner, base / "w"), hidden=(outer,), allowed=("registry.npmjs.org",))
    outer.mkdir()
    with job.started(base / "s") as started:
        argv = started.wrap(["true"], cwd=inner)
    mounts = argv[argv.index(str(outer)) - 1 : argv.index("--chdir")]
    assert mounts == [
        *("--tmpfs", str(outer)),
        *("--bind", str(base / "w"), str(base / "w")),
        *("--bind", str(base / "s"), str(base / "s")),
        *("--bind", str(inner), str(inner)),
        *("--remount-ro", str(outer)),
    ]
    assert argv[argv.index("--chdir") + 1] == str(inner)
    assert argv[-2:] == ["--", "true"]


@pytest.mark.parametrize(
    ("host", "port", "allowed"),
    [
        ("registry.npmjs.org", 443, True),
        ("REGISTRY.npmjs.org.", 80, True),
        ("registry.npmjs.org", 8443, False),
        ("api.anthropic.com", 443, False),
        ("example.com", 8080, True),
        ("example.com", 443, False),
        ("a.b.github.com", 443, True),
        ("github.com", 443, False),
        ("evilgithub.com", 443, False),
    ],
)
def test_the_allowlist(host: str, port: int, allowed: bool):
    rules = Allowlist(["registry.npmjs.org", "example.com:8080", "*.github.com"])
    assert rules.allows(host, port) is allowed


def test_a_project_under_tmp_is_still_seen_inside(monkeypatch):
    """A clone under /tmp (CI's, a developer's) would be hidden by the sandbox's fresh /tmp: bridge, agent, build."""
    from steps.job import sandbox

    monkeypatch.setattr(sandbox, "CODE_ROOT", Path("/tmp/some-clone"))
    argv = sandbox._base_argv()
    assert argv[argv.index("--tmpfs") :][:5] == ["--tmpfs", "/tmp", "--ro-bind", "/tmp/some-clone", "/tmp/some-clone"]
    monkeypatch.setattr(sandbox, "CODE_ROOT", Path("/app"))
    assert "/app" not in sandbox._base_argv()
