"""The warm build manager with real node, the real server.mjs, the job's identity and sandbox (the
tests run as root), and a stand-in for Astro (fake_astro.py): what it keeps, stops and ends."""

from __future__ import annotations

import contextlib
import os
import random
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from fake_astro import built_by, make_site

from steps.job.runner import JobRunner, find_containment
from steps.warm import client
from steps.warm.manager import Manager, listen
from supervisor.common import proc_scan
from supervisor.contract.config import Config, load_config

CONTEXT = {"commandId": "c1", "sessionId": "s1"}


class Warm:
    """A manager serving on a socket, and the workspace it builds in."""

    def __init__(self, workspace: Path, **env: str):
        first = 300_000 + random.randrange(100_000) * 2000
        values = {"WORKSPACE_PATH": str(workspace), "JOB_UID_RANGE": f"{first}-{first + 999}", **env}
        self.config: Config = load_config({**values, "BUILD_MODE": "warm"}, require_input_queue=False)
        self.containment = find_containment("auto")
        folder = workspace.parent / "manager"
        folder.mkdir(mode=0o700)
        self.manager = Manager(self.config, self.containment, folder)
        self.socket = folder / "manager.sock"
        self.listener = listen(self.socket)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.manager.serve, args=(self.listener, self.stop), daemon=True)
        self.thread.start()

    def site(self, client_id: str = "acme", page: str = "hello") -> Path:
        checkout = Path(self.config.workspace_path, client_id, "u1", "site")
        make_site(checkout, page)
        umask = os.umask(0o022)
        try:
            self.runner(checkout).prepare_workspace()  # what the worker does before any job
        finally:
            os.umask(umask)  # it sets the worker's umask (process-wide): not for the rest of this test process
        return checkout

    def runner(self, checkout: Path) -> JobRunner:
        config = self.config
        return JobRunner.for_checkout(self.containment, checkout, config.workspace_path, (), config.job_uid_range)

    def build(self, checkout: Path, timeout: float = 60) -> client.WarmBuild:
        return client.build(checkout, timeout, CONTEXT)

    def server_processes(self, checkout: Path) -> list[psutil.Process]:
        return self.manager.servers[checkout].processes()

    def close(self) -> None:
        self.stop.set()
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes its accept()
        self.thread.join(timeout=10)
        self.listener.close()
        self.manager.close()


@pytest.fixture
def warm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Warm]:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    made = Warm(workspace, MAX_WORKERS="2")
    monkeypatch.setenv(client.SOCKET_VARIABLE, str(made.socket))
    yield made
    made.close()


def uid_processes(uid: int) -> list[int]:
    """The uid's processes still running (a zombie is gone already: here pid 1 may be slow to reap)."""
    running = []
    for pid in proc_scan.pids_of_uid(uid):
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
    return running


def test_one_server_builds_again_and_again_stopped_in_between_as_an_identity_of_its_own(warm):
    checkout = warm.site()
    first = warm.build(checkout)
    assert first.server_started and first.builds == 1
    page, server = built_by(checkout)
    assert page == "hello"
    (checkout / "src" / "page.txt").write_text("hello again")
    second = warm.build(checkout)
    assert not second.server_started and second.builds == 2
    assert built_by(checkout) == ("hello again", server)  # the same process, the page read afresh

    processes = warm.server_processes(checkout)
    assert processes and {proc.status() for proc in processes} == {psutil.STATUS_STOPPED}
    if warm.containment.identity:  # root: a uid that is not the job's, in the job's group
        job = warm.runner(checkout).identity
        uid = warm.manager.servers[checkout].uid
        assert uid is not None and job is not None and uid != job.uid
        assert {proc.uids().real for proc in processes} == {uid}
        assert {proc.gids().real for proc in processes} == {job.gid}
        assert (checkout / "dist" / "index.html").stat().st_gid == job.gid
        # Ending what the job left running (after every job step) leaves the server alone.
        warm.runner(checkout).end_leftovers()
        assert all(proc.is_running() for proc in processes)


def test_a_changed_script_or_dependency_starts_a_new_server_and_an_edited_page_does_not(warm):
    checkout = warm.site()
    warm.build(checkout)
    _, server = built_by(checkout)
    first = warm.manager.servers[checkout]
    (checkout / "src" / "note.md").write_text("content, read afresh by every build")
    assert not warm.build(checkout).server_started
    (checkout / "src" / "consts.mjs").write_text("export const title = 'a module node would keep';\n")
    assert warm.build(checkout).server_started
    assert built_by(checkout)[1] != server and not first.alive()
    (checkout / "node_modules" / ".package-lock.json").write_text("{}")  # npm installed again
    assert warm.build(checkout).server_started


def test_a_failed_build_ends_the_server_and_tells_the_worker_to_build_cold(warm):
    checkout = warm.site()
    warm.build(checkout)
    uid = warm.manager.servers[checkout].uid
    (checkout / "src" / "fail").write_text("")
    with pytest.raises(client.WarmUnavailable, match="the page does not compile"):
        warm.build(checkout)
    assert checkout not in warm.manager.servers
    if uid is not None:
        assert uid_processes(uid) == []


def test_a_worker_that_goes_away_mid_build_ends_the_server(warm):
    checkout = warm.site()
    warm.build(checkout)
    server = warm.manager.servers[checkout]
    (checkout / "src" / "slow").write_text("")
    with socket.socket(socket.AF_UNIX) as conn:  # what an interrupted worker's closing socket does
        conn.connect(str(warm.socket))
        conn.sendall(b'{"checkout": "%s", "timeoutSeconds": 60}\n' % str(checkout).encode())
        deadline = time.monotonic() + 10
        while server.builds < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)

    # The manager forgets the server first and kills its processes next: wait for all of it.
    def ending() -> bool:
        uid_left = server.uid is not None and uid_processes(server.uid)
        return checkout in warm.manager.servers or server.alive() or bool(uid_left)

    deadline = time.monotonic() + 10
    while ending() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert checkout not in warm.manager.servers
    assert not server.alive()
    if server.uid is not None:
        assert uid_processes(server.uid) == []


def test_a_build_past_its_timeout_is_ended_and_reported_as_timed_out(warm):
    checkout = warm.site()
    (checkout / "src" / "slow").write_text("")
    began = time.monotonic()
    with pytest.raises(client.WarmTimedOut):
        warm.build(checkout, timeout=1)
    assert time.monotonic() - began < 20
    assert checkout not in warm.manager.servers


def test_a_server_grown_too_big_is_ended_after_its_build(tmp_path, monkeypatch):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    warm = Warm(workspace, BUILD_WARM_MEMORY_MIB="150")
    monkeypatch.setenv(client.SOCKET_VARIABLE, str(warm.socket))
    try:
        checkout = warm.site()
        (checkout / "src" / "grow").write_text("")
        done = warm.build(checkout)
        assert done.rss_mib > 150 and built_by(checkout)[0] == "hello"  # the build itself stands
        assert checkout not in warm.manager.servers
    finally:
        warm.close()


def test_idle_servers_and_the_least_recently_used_one_make_way(tmp_path, monkeypatch):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    warm = Warm(workspace, MAX_WORKERS="1", BUILD_WARM_IDLE_SECONDS="5")
    monkeypatch.setenv(client.SOCKET_VARIABLE, str(warm.socket))
    try:
        acme, globex = warm.site("acme"), warm.site("globex")
        warm.build(acme)
        acme_server = warm.manager.servers[acme]
        warm.build(globex)  # MAX_WORKERS=1: acme's server makes room
        assert list(warm.manager.servers) == [globex] and not acme_server.alive()
        warm.manager.end_idle(time.monotonic() + 6)
        assert warm.manager.servers == {}
    finally:
        warm.close()


@pytest.mark.parametrize(
    ("checkout", "why"),
    [
        ("relative/site", "absolute"),
        ("/etc", "not in the workspace"),
        ("{workspace}/.supervisor", "not in the workspace"),
        ("{workspace}/acme/u1/link", "link"),
        ("{workspace}/acme/u1/missing", "not a folder"),
    ],
)
def test_a_request_for_anything_but_a_checkout_of_the_workspace_is_refused(warm, checkout, why):
    real = warm.site()
    os.symlink(real, real.parent / "link")
    workspace = warm.config.workspace_path
    with pytest.raises(client.WarmUnavailable, match=why):
        client.build(Path(checkout.format(workspace=workspace)), 60, CONTEXT)
    assert warm.manager.servers == {}


def test_without_a_manager_the_worker_is_told_to_build_cold(tmp_path, monkeypatch):
    monkeypatch.delenv(client.SOCKET_VARIABLE, raising=False)
    with pytest.raises(client.WarmUnavailable, match="no warm build manager"):
        client.build(tmp_path, 60, CONTEXT)
    monkeypatch.setenv(client.SOCKET_VARIABLE, str(tmp_path / "gone.sock"))
    with pytest.raises(client.WarmUnavailable, match="did not answer"):
        client.build(tmp_path, 60, CONTEXT)


def test_a_process_the_build_detached_is_ended_and_one_it_keeps_is_stopped_with_the_server(warm):
    checkout = warm.site()
    (checkout / "src" / "daemon").write_text("")
    warm.build(checkout)
    names = {}
    for proc in warm.server_processes(checkout):
        with contextlib.suppress(psutil.ZombieProcess):  # ended, not yet reaped by its stopped parent
            names[" ".join(proc.cmdline()[-1:])] = proc.status()
    assert "detached" not in names, names
    assert names["kept"] == psutil.STATUS_STOPPED, names


def test_what_a_child_prints_on_the_servers_stdout_is_not_taken_for_its_answer(warm):
    checkout = warm.site()
    (checkout / "src" / "chatty").write_text("")
    assert warm.build(checkout).builds == 1 and built_by(checkout)[0] == "hello"
    assert warm.build(checkout).builds == 2  # the same server, still in step with its answers
    assert '{"ok": false}' in warm.manager.servers[checkout].tail()


@pytest.mark.parametrize(
    ("request_bytes", "why"),
    [
        (b"not json\n", "not JSON"),
        (b"[1, 2]\n", "not a JSON object"),
        (b"{" + b" " * 70_000, "too long"),
        (b'{"checkout": "/tmp", "timeoutSeconds": -1}\n', "not in the workspace|timeoutSeconds"),
    ],
)
def test_a_malformed_request_gets_one_clear_refusal(warm, request_bytes, why):
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(warm.socket))
        conn.sendall(request_bytes)
        reply = client.read_object(conn, 65536)
    assert reply["ok"] is False and reply["error"].startswith("bad request: ")
    assert re.search(why, reply["error"]), reply
