"""Small helpers shared by the tests (imported by conftest and test modules)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
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

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(15)
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
