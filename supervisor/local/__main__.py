"""The whole system on this machine: moto's server for SQS and S3, a bare git remote, the supervisor.

`bin/run-local` runs this. It sends one instruction, prints the progress and the response, and
shows where the built preview is served. On a terminal it then reads more instructions; Ctrl-C or an
empty line stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
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

from steps.job.runner import find_containment
from supervisor.local.orchestration import create_state_machine, execution_outcome, start_execution
from supervisor.local.stack import REGION, ROOT, LocalStack, job_python, local_stack

STATE = ROOT / ".local"
SCRIPTED_AGENT = ROOT / "examples" / "scripted-agent" / "claude"
CLIENT, USER, THREAD = "demo", "you", "local-demo"


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


def agent_command() -> tuple[str, str]:
    chosen = os.environ.get("AGENT_COMMAND")
    if chosen:
        return chosen, f"{chosen} (from AGENT_COMMAND)"
    return (
        f"{job_python()} {SCRIPTED_AGENT}",
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
    parser.add_argument(
        "--step-functions",
        action="store_true",
        help="send each instruction through a local Step Functions state machine (task token, heartbeats, callback)",
    )
    args = parser.parse_args(argv)
    state: Path = args.state.resolve()
    interactive = sys.stdin.isatty() and not args.once

    with local_stack(state) as stack:
        return run_demo(stack, args.instruction, interactive, step_functions=args.step_functions)


def run_demo(stack: LocalStack, instruction: str, interactive: bool, *, step_functions: bool = False) -> int:
    bucket = stack.create_bucket(CLIENT)
    preview_server = start_preview_server(stack.s3, bucket)
    preview = f"http://127.0.0.1:{preview_server.server_address[1]}/"
    command, agent_label = agent_command()
    env = stack.supervisor_env(
        PREVIEW_URL=preview,
        AGENT_COMMAND=command,
        PROGRESS_EVENTS="true",
        LOG_FORMAT="text",
        SHUTDOWN_GRACE_SECONDS="5",
    )
    sqs, queues, state, endpoint, remote = stack.sqs, stack.queues, stack.state, stack.endpoint, stack.remote
    log_path = state / "supervisor.log"
    say(f"local AWS (moto): {endpoint}")
    say(f"site remote:      {remote}")
    say(f"agent:            {agent_label}")
    say(f"supervisor log:   {log_path}")
    layers = find_containment(env.get("SANDBOX", "auto")).layers()
    say("containment:      " + "; ".join(f"{name} {state}" for name, state in layers.items()))
    supervisor = stack.start_supervisor(env, log_path)
    orchestrator = boto3.client("stepfunctions", region_name=REGION, endpoint_url=endpoint) if step_functions else None
    machine = create_state_machine(orchestrator, queues["input"]) if orchestrator else None
    if machine:
        say(f"state machine:    {machine} (sqs:sendMessage.waitForTaskToken into the input queue)")
    code = 0
    try:
        while instruction:
            command_id = f"local-{uuid.uuid4().hex[:8]}"
            body = {
                "instruction": instruction,
                "commandId": command_id,
                "chatThreadId": THREAD,
                "clientId": CLIENT,
                "userId": USER,
                "timestamp": int(time.time() * 1000),
            }
            execution = None
            if machine:  # the anchor's newest shape, sent by the state machine with its task token
                task = {"messageId": command_id, "text": instruction, "threadId": THREAD, "projectId": CLIENT}
                execution = start_execution(orchestrator, machine, {**task, "userId": USER})
            else:
                sqs.send_message(QueueUrl=queues["input"], MessageBody=json.dumps(body))
            say(f"\nsent {command_id}: {instruction!r}  (the first run clones the site and runs npm ci)")
            response = wait_for(sqs, queues["output"], command_id)
            if response is None:
                say(f"no response in time; see {log_path}")
                code = 1
                break
            show(response, preview)
            code = 0 if response["success"] else 1
            if execution:
                outcome = execution_outcome(orchestrator, execution)
                say(f"execution {outcome['status']}" + (f" ({outcome['error']})" if outcome["error"] else ""))
                code = 0 if outcome["status"] == "SUCCEEDED" else 1
            if not interactive:
                break
            instruction = input("\nnext instruction (empty line to stop): ").strip()
    except (KeyboardInterrupt, EOFError):
        say("")
    finally:
        supervisor.send_signal(signal.SIGTERM)  # local_stack's exit would too; stop it before the server
        try:
            supervisor.wait(30)
        except subprocess.TimeoutExpired:
            supervisor.kill()
        preview_server.shutdown()
        preview_server.server_close()
        say("stopped: supervisor, preview server and local AWS")
    return code


if __name__ == "__main__":
    sys.exit(main())
