"""Small helpers shared by the tests (imported by conftest and test modules)."""

from __future__ import annotations

import contextlib
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
DEMO_SITE = ROOT / "examples" / "demo-site"
FAKE_CLAUDE = TESTS / "fake_claude"
# For tests whose subject is not the Astro build (a few ms of node instead of ~3 s of astro).
QUICK_BUILD = f"node {TESTS / 'quick_build.mjs'}"
REGION = "us-west-2"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def repository_env(cwd: Path) -> dict[str, str]:
    """GIT_DIR and GIT_WORK_TREE for a checkout whose repository lives beside it (steps/git/layout.py)."""
    beside = cwd.parent / f".{cwd.name}.git"
    if not (cwd / ".git").exists() and beside.is_dir():
        return {"GIT_DIR": str(beside), "GIT_WORK_TREE": str(cwd)}
    return {}


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, **repository_env(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env)


def git_out(cwd: Path, *args: str) -> str:
    return git(cwd, *args).stdout.strip()


def message(**fields: Any) -> dict[str, Any]:
    """A valid first-shape message; keyword arguments override or add fields (None removes one)."""
    body: dict[str, Any] = {
        "instruction": "Make the header blue",
        "commandId": "cmd-1",
        "chatThreadId": "chat-1",
        "clientId": "acme",
        "userId": "u1",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def run_worker(body: dict[str, Any], env: dict[str, str], timeout: float = 180) -> dict[str, Any]:
    """Parse the message as the supervisor would and run one real worker process on it."""
    from supervisor.contract.command import parse_command

    command = parse_command(json.dumps(body), env.get("REPO_URL"))
    completed = subprocess.run(
        [sys.executable, "-c", WORKER_HARNESS],
        input=json.dumps({"mode": "run", "command": command.to_dict()}),
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
    )
    lines = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
    results = [line["response"] for line in lines if line.get("event") == "result"]
    if completed.returncode != 0 or not results:
        raise AssertionError(f"worker failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    return {**results[-1], "_log": completed.stderr}


# Runs steps.worker with its event pipe pointed at stdout, so the test reads events directly.
WORKER_HARNESS = """
import os, runpy, sys
os.environ["WEBORDINARY_EVENT_FD"] = str(os.dup(1))
sys.argv = ["steps.worker"]
runpy.run_module("steps.worker", run_name="__main__")
"""


def bucket_keys(s3: Any, bucket: str) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            keys[item["Key"]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return keys


class SupervisorProcess:
    """`python -m supervisor` as a real child process, stopped with SIGTERM at the end."""

    def __init__(self, env: dict[str, str], log_path: Path, under: list[str] | None = None):
        """`under`: a program that starts the supervisor, as tini does in the image (its argv prefix)."""
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [*(under or []), sys.executable, "-m", "supervisor"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

        self._stop_sent = False

    def signal_stop(self) -> None:
        """SIGTERM once (a second one means a forced stop, and one that lands while Python finalises, its
        handlers reset, kills the process with -15)."""
        if not self._stop_sent and self.process.poll() is None:
            self.process.send_signal(15)
            self._stop_sent = True

    def stop(self, timeout: float = 60) -> int:
        self.signal_stop()
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    continue
        return lines


class OutputWatcher:
    """Reads the output queue on a thread and keeps every body, so a test can wait for a moment."""

    def __init__(self, sqs: Any, url: str):
        import threading

        self.sqs, self.url = sqs, url
        self.bodies: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            reply = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for message in reply.get("Messages", []):
                body = json.loads(message["Body"])
                body["_received"] = time.monotonic()
                with self._lock:
                    self.bodies.append(body)
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def wait_for(self, predicate: Any, timeout: float = 120, what: str = "") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for body in self.bodies:
                    if predicate(body):
                        return body
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or predicate}; saw {self.summary()}")

    def progress(self, command_id: str, step: str, status: str = "started", timeout: float = 120) -> dict[str, Any]:
        return self.wait_for(
            lambda b: (
                b["type"] == "progress" and b["commandId"] == command_id and (b["step"], b["status"]) == (step, status)
            ),
            timeout,
            f"{command_id} {step} {status}",
        )

    def response(self, command_id: str, timeout: float = 180) -> dict[str, Any]:
        return self.wait_for(lambda b: b["type"] == "response" and b["commandId"] == command_id, timeout, command_id)

    def responses(self) -> list[dict[str, Any]]:
        with self._lock:
            return [b for b in self.bodies if b["type"] == "response"]

    def summary(self) -> list[str]:
        with self._lock:
            return [f"{b['commandId']}:{b.get('step', '')}:{b.get('status', b.get('errorCode'))}" for b in self.bodies]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def processes_in(folder: Path) -> dict[int, float]:
    """Every process in the whole process table whose working directory is inside `folder`."""
    import psutil

    found = {}
    for proc in psutil.process_iter(["pid", "cwd", "create_time"]):
        cwd = proc.info.get("cwd")
        if cwd and (cwd == str(folder) or cwd.startswith(str(folder) + "/")):
            found[proc.info["pid"]] = proc.info["create_time"]
    return found


def still_alive(snapshot: dict[int, float]) -> list[int]:
    """pids of the snapshot that still exist as the same process (not a reused pid, not a zombie)."""
    import psutil

    alive = []
    for pid, created in snapshot.items():
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - created) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.Error:
            continue
    return alive


def processes_with(token: str) -> list[int]:
    """pids anywhere in the process table whose command line mentions token."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmdline = proc.info["cmdline"] or []
            if any(token in part for part in cmdline) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.info["pid"])
    return found


def send(
    sqs: Any, queues: dict[str, str], command_id: str, instruction: str, thread: str = "chat-a", client: str = "acme"
) -> None:
    """Send a first-shape command for user u1 to the input queue."""
    body = {
        "instruction": instruction,
        "commandId": command_id,
        "chatThreadId": thread,
        "clientId": client,
        "userId": "u1",
    }
    sqs.send_message(QueueUrl=queues["input"], MessageBody=json.dumps(body))


def prewarm_checkout(workspace_root: Path, remote: Path, installed_site: Path, client: str, user: str) -> Path:
    """Clone the site where the worker expects it and hard-link the installed node_modules into it,
    so the worker's `npm ci` check finds the lockfile unchanged and a test does not pay for an install."""
    checkout = workspace_root / client / user / remote.name.removesuffix(".git")
    checkout.parent.mkdir(parents=True, exist_ok=True)
    git(checkout.parent, "clone", "--quiet", str(remote), str(checkout))
    subprocess.run(["cp", "-al", str(installed_site / "node_modules"), str(checkout / "node_modules")], check=True)
    return checkout


def drain(sqs: Any, url: str, *, expect: int, timeout: float = 120) -> list[dict[str, Any]]:
    """Read (and delete) messages from a queue until `expect` arrived or time runs out."""
    bodies: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(bodies) < expect and time.monotonic() < deadline:
        reply = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        )
        for message in reply.get("Messages", []):
            try:
                body = json.loads(message["Body"])
            except ValueError:
                body = {"_raw": message["Body"]}
            if not isinstance(body, dict):
                body = {"_raw": message["Body"]}
            body["_attributes"] = {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}
            bodies.append(body)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


class ManualClock:
    """A monotonic clock a test moves by hand (one per simulated machine; they are never compared)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


# Settled state: what proves that no further answer, run or push can come (instead of a sleep).


def queue_depth(sqs: Any, url: str) -> int:
    """Every message a queue holds: visible, in flight or delayed (0 for a queue that is gone)."""
    from botocore.exceptions import ClientError

    try:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    except ClientError as error:
        if "NonExistentQueue" in str(error) or "QueueDoesNotExist" in str(error):
            return 0
        raise
    return sum(int(attributes.get(f"ApproximateNumberOfMessages{state}", 0)) for state in ("", "NotVisible", "Delayed"))


def inbox_urls(sqs: Any, input_url: str) -> list[str]:
    """The inboxes of the containers sharing an input queue: `{its name}-inbox-*` (supervisor/sharing)."""
    name = input_url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".fifo")
    return list(sqs.list_queues(QueueNamePrefix=f"{name}-inbox-").get("QueueUrls", []))


def wait_until_settled(
    sqs: Any, queues: dict[str, str], supervisors: list[SupervisorProcess], workspace: Path, timeout: float = 60
) -> None:
    """Return once no further response can come, or fail. Settled is, seen twice in a row:
    - the input queue and every inbox hold no message (visible, in flight or delayed): each message is
      deleted only after its answer went out, so none is left to run or answer again;
    - every supervisor still running has published a status since then with no run and nothing waiting:
      no worker is left to finish and answer (a run whose message another container deleted included);
    - the output queue is drained: the watcher holds every body sent.
    The second look comes a status tick (0.5 s) later: an answer ordered just before an idle status has
    been sent by then (the delivery thread sends at once)."""
    from supervisor.status import status_path

    path = status_path(workspace)  # one per host: supervisors on one workspace take turns writing it
    deadline = time.monotonic() + timeout
    quiet, why = 0, "never looked"
    while quiet < 2:
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled after {timeout:g} s: {why}")
        why = _unsettled(sqs, queues, supervisors, path, time.time(), deadline)
        quiet = 0 if why else quiet + 1
        if why:
            time.sleep(0.1)


def _unsettled(
    sqs: Any, queues: dict[str, str], supervisors: list[SupervisorProcess], path: Path, since: float, deadline: float
) -> str:
    """Why it is not settled yet ("" when it is)."""
    from supervisor.status import read_status

    urls = [queues["input"], *inbox_urls(sqs, queues["input"])]
    held = {url.rsplit("/", 1)[-1]: depth for url in urls if (depth := queue_depth(sqs, url))}
    if held:
        return f"messages held: {held}"
    live = {s.process.pid for s in supervisors if s.process.poll() is None}
    idle: set[int] = set()
    while idle != live:
        if time.monotonic() > deadline:
            return f"no status written since {since:.2f} by supervisors {sorted(live - idle)}"
        try:
            status = read_status(path)
        except (OSError, ValueError):
            status = {}
        pid = status.get("pid")
        if pid in live and float(status.get("heartbeat", 0)) > since:
            if status.get("workers") or status.get("waiting"):
                return f"supervisor {pid} has work: {status.get('workers')} waiting {status.get('waiting')}"
            idle.add(pid)
        time.sleep(0.02)
    unread = queue_depth(sqs, queues["output"])
    return f"{unread} bodies not yet read from the output queue" if unread else ""


def commits_for(remote: Path, command_id: str) -> list[tuple[str, str]]:
    """(commit, subject) of each commit on any branch of the remote whose Command-Id trailer names the
    command, newest first: the whole one of a command that finished, the WIP ones of interrupted runs."""
    form = "%H%x01%s%x01%(trailers:key=Command-Id,valueonly,separator=%x03)%x02"
    found = []
    for record in git(remote, "log", "--all", f"--format={form}").stdout.split("\x02")[:-1]:
        commit, subject, ids = record.lstrip("\n").split("\x01")
        if command_id in [value.strip() for value in ids.split("\x03") if value.strip()]:
            found.append((commit, subject))
    return found


def agent_prompts(agent_log: Path) -> list[str]:
    """The prompt of each start of the fake agent, in order (FAKE_CLAUDE_LOG)."""
    if not agent_log.exists():
        return []
    argvs = [json.loads(line)["argv"] for line in agent_log.read_text().splitlines()]
    return [argv[argv.index("-p") + 1] for argv in argvs if "-p" in argv]


def agent_runs(agent_log: Path, instruction: str) -> int:
    """How many times the fake agent was started with this instruction as its prompt."""
    return agent_prompts(agent_log).count(instruction)


def backdate_objects(bucket: str, prefix: str, days: float) -> int:
    """Make the objects under `prefix` look `days` older, in moto's server of this test process (S3 lets no
    client set LastModified); returns how many were changed."""
    from datetime import timedelta

    from moto.s3.models import s3_backends

    partition, account = s3_backends.bucket_accounts[bucket]
    keys = s3_backends[account][partition].get_bucket(bucket).keys
    changed = 0
    for name in list(keys.keys()):
        if name.startswith(prefix):
            keys[name].last_modified -= timedelta(days=days)
            changed += 1
    return changed


def tiny_png(width: int = 2, height: int = 2) -> bytes:
    """A valid PNG of red pixels: attachments are told by their bytes, so a test needs a real one."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
