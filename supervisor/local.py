"""The whole system on this machine: moto's server for SQS and S3, a bare git remote, the supervisor.

`bin/run-local` runs this. It sends one instruction, prints the progress and the response, and
shows where the built preview is served. On a terminal it then reads more instructions; Ctrl-C or an
empty line stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import urlopen

import boto3
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".local"
DEMO_SITE = ROOT / "examples" / "demo-site"
SCRIPTED_AGENT = ROOT / "examples" / "scripted-agent" / "claude"
CLIENT, USER, THREAD = "demo", "you", "local-demo"
REGION = "us-west-2"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


class PreviewHandler(BaseHTTPRequestHandler):
    """Serves the preview bucket the way a static host does: `/about/` → `about/index.html`."""

    s3: Any = None
    bucket = ""

    def do_GET(self) -> None:
        key = unquote(urlsplit(self.path).path).lstrip("/")
        if key == "" or key.endswith("/"):
            key += "index.html"
        try:
            found = self.s3.get_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.NoSuchKey:
            self.send_error(404, f"{key} is not in s3://{self.bucket}")
            return
        body = found["Body"].read()
        self.send_response(200)
        self.send_header("Content-Type", found.get("ContentType", "application/octet-stream"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_preview_server(s3: Any, bucket: str) -> ThreadingHTTPServer:
    handler = type("Handler", (PreviewHandler,), {"s3": s3, "bucket": bucket})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, name="preview", daemon=True).start()
    return server


def say(text: str) -> None:
    print(text, flush=True)


def demo_remote(state: Path) -> Path:
    """A bare repository seeded from examples/demo-site (kept between runs, so a chat continues)."""
    remote = state / "remotes" / "demo-site.git"
    if remote.exists():
        return remote
    seed = state / "seed"
    shutil.rmtree(seed, ignore_errors=True)
    shutil.copytree(DEMO_SITE, seed, ignore=shutil.ignore_patterns("node_modules", "dist", ".astro"))
    env = {**os.environ, "GIT_AUTHOR_NAME": "Demo", "GIT_AUTHOR_EMAIL": "demo@example.invalid",
           "GIT_COMMITTER_NAME": "Demo", "GIT_COMMITTER_EMAIL": "demo@example.invalid"}  # fmt: skip
    for argv in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "Demo site"]):
        subprocess.run(argv, cwd=seed, env=env, check=True)
    remote.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(remote)], check=True)
    shutil.rmtree(seed)
    return remote


def agent_command() -> tuple[str, str]:
    chosen = os.environ.get("AGENT_COMMAND")
    if chosen:
        return chosen, f"{chosen} (from AGENT_COMMAND)"
    return (
        f"{sys.executable} {SCRIPTED_AGENT}",
        "SCRIPTED DEMO AGENT (not Claude; AGENT_COMMAND=claude uses the real one)",
    )


def wait_for(sqs: Any, url: str, command_id: str, timeout: float = 600) -> dict[str, Any] | None:
    """Print progress events for the command until its final response arrives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2)
        for message in reply.get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            body = json.loads(message["Body"])
            if body.get("commandId") != command_id:
                continue
            if body["type"] == "progress":
                say(f"  · {body['step']:<9} {body['status']}")
            else:
                return body
    return None


def show(response: dict[str, Any], preview: str) -> None:
    say("\nresponse:")
    say(json.dumps({k: v for k, v in response.items() if k != "steps"}, indent=2, ensure_ascii=False))
    steps = ", ".join(f"{step['name']} {step['status']} {step['durationMs']}ms" for step in response["steps"])
    say(f"steps: {steps}")
    try:
        with urlopen(preview, timeout=5) as page:  # noqa: S310 - our own loopback server
            say(f"\npreview: {preview}  (GET → {page.status}, {len(page.read())} bytes; served while this runs)")
    except OSError as error:
        say(f"\npreview: {preview}  (not served yet: {error})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/run-local", description=__doc__)
    parser.add_argument("instruction", nargs="?", default="Make the header blue")
    parser.add_argument("--once", action="store_true", help="stop after the first response (default off a terminal)")
    parser.add_argument("--state", type=Path, default=STATE, help="folder for the workspace, remote and log")
    args = parser.parse_args(argv)
    state: Path = args.state.resolve()
    interactive = sys.stdin.isatty() and not args.once

    state.mkdir(parents=True, exist_ok=True)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(CREDENTIALS)
    sqs = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint)
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    queues = {name: sqs.create_queue(QueueName=f"edit-{name}")["QueueUrl"] for name in ("input", "output", "dlq")}
    bucket = f"edit.{CLIENT}.webordinary.com"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    preview_server = start_preview_server(s3, bucket)
    preview = f"http://127.0.0.1:{preview_server.server_address[1]}/"
    remote = demo_remote(state)
    command, agent_label = agent_command()

    env = {
        **os.environ,
        **CREDENTIALS,
        "INPUT_QUEUE_URL": queues["input"],
        "OUTPUT_QUEUE_URL": queues["output"],
        "DLQ_URL": queues["dlq"],
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": REGION,
        "WORKSPACE_PATH": str(state / "workspace"),
        "REPO_URL": str(remote),
        "PREVIEW_URL": preview,
        "AGENT_COMMAND": command,
        "PROGRESS_EVENTS": "true",
        "LOG_FORMAT": "text",
        "SHUTDOWN_GRACE_SECONDS": "5",
    }
    log_path = state / "supervisor.log"
    say(f"local AWS (moto): {endpoint}")
    say(f"site remote:      {remote}")
    say(f"agent:            {agent_label}")
    say(f"supervisor log:   {log_path}")
    with log_path.open("ab") as log:
        supervisor = subprocess.Popen([sys.executable, "-m", "supervisor"], cwd=ROOT, env=env, stdout=log, stderr=log)
    code = 0
    try:
        instruction = args.instruction
        while instruction:
            command_id = f"local-{uuid.uuid4().hex[:8]}"
            body = {"instruction": instruction, "commandId": command_id, "chatThreadId": THREAD,
                    "clientId": CLIENT, "userId": USER, "timestamp": int(time.time() * 1000)}  # fmt: skip
            sqs.send_message(QueueUrl=queues["input"], MessageBody=json.dumps(body))
            say(f"\nsent {command_id}: {instruction!r}  (the first run clones the site and runs npm ci)")
            response = wait_for(sqs, queues["output"], command_id)
            if response is None:
                say(f"no response in time; see {log_path}")
                code = 1
                break
            show(response, preview)
            code = 0 if response["success"] else 1
            if not interactive:
                break
            instruction = input("\nnext instruction (empty line to stop): ").strip()
    except (KeyboardInterrupt, EOFError):
        say("")
    finally:
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(30)
        except subprocess.TimeoutExpired:
            supervisor.kill()
        preview_server.shutdown()
        server.stop()
        say("stopped: supervisor, preview server and local AWS")
    return code


if __name__ == "__main__":
    sys.exit(main())
