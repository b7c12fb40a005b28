"""The whole system on this machine: moto's server for SQS and S3, a bare git remote, the supervisor.

`bin/run-local` runs this. It sends the instructions given, one after the other (`/undo` takes back the
one before), prints the progress and each response, and shows where the built preview is served. On a
terminal it then reads more instructions; Ctrl-C or an empty line stops everything it started. With
`--attach PATH` the first instruction carries that file (stored in a local attachments bucket, placed by
the worker at public/uploads/{commandId}/). With `--preview-mode thread` (or PREVIEW_MODE=thread) each
chat thread deploys to its own folder and is served at `http://{label}.localhost:PORT/`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import boto3

from steps.job.runner import find_containment
from supervisor.contract.actions import is_undo_instruction
from supervisor.contract.previews import PREVIEW_MODES, SHARED, thread_label
from supervisor.local.attachments import attach_problem, upload_attachments
from supervisor.local.orchestration import create_state_machine, execution_outcome, start_execution
from supervisor.local.preview_server import fetch, start_preview_server
from supervisor.local.stack import ATTACHMENTS_BUCKET_TEMPLATE, REGION, ROOT, LocalStack, job_python, local_stack

STATE = ROOT / ".local"
SCRIPTED_AGENT = ROOT / "examples" / "scripted-agent" / "claude"
CLIENT, USER, THREAD = "demo", "you", "local-demo"
DEFAULT_INSTRUCTION = "Make the header blue"


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


def served(url: str) -> str:
    """What the preview server answers for `url`, in a few words."""
    try:
        status, body = fetch(url)
    except OSError as error:
        return f"not served yet: {error}"
    return f"GET → {status}, {len(body)} bytes"


def show(response: dict[str, Any], preview: str) -> None:
    say("\nresponse:")
    say(json.dumps({k: v for k, v in response.items() if k != "steps"}, indent=2, ensure_ascii=False))
    steps = ", ".join(f"{step['name']} {step['status']} {step['durationMs']}ms" for step in response["steps"])
    say(f"steps: {steps}")
    say(f"\npreview: {preview}  ({served(preview)}; served while this runs)")
    for item in response.get("attachments") or []:  # where the site publishes each placed file
        say(f"  attached:   {item['path']} → {preview_link(preview, item['sitePath'])}")
    undone = response.get("undone")
    if undone:
        say(f"  took back {undone['commandId']}: {', '.join(undone['files']) or 'no files'}")
        for name in undone["files"]:  # a file of public/ is served at the same path: gone, or as it was
            if name.startswith("public/"):
                say(f"  taken back: {name} → {preview_link(preview, name.removeprefix('public'))}")


def preview_link(preview: str, site_path: str) -> str:
    url = urljoin(preview, quote(site_path, safe="/"))
    return f"{url}  ({served(url)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bin/run-local", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "instructions",
        nargs="*",
        metavar="instruction",
        help=f"sent in order, each after the response to the one before ({DEFAULT_INSTRUCTION!r} when none); "
        "`/undo` takes back the thread's last command; the first that fails stops the rest",
    )
    parser.add_argument(
        "--attach",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="a file (an image) the first instruction carries; repeat for more",
    )
    parser.add_argument(
        "--once", action="store_true", help="stop after the instructions given (default off a terminal)"
    )
    parser.add_argument("--state", type=Path, default=STATE, help="folder for the workspace, remote and log")
    parser.add_argument(
        "--step-functions",
        action="store_true",
        help="send each instruction through a local Step Functions state machine (task token, heartbeats, callback)",
    )
    parser.add_argument(
        "--preview-mode",
        choices=PREVIEW_MODES,
        default=os.environ.get("PREVIEW_MODE", SHARED).strip().lower() or SHARED,
        help="shared: one preview site; thread: one per chat thread, at http://{label}.localhost:PORT/ "
        "(default: PREVIEW_MODE, else shared)",
    )
    parser.add_argument("--thread", default=THREAD, help=f"the chat thread the instructions belong to ({THREAD})")
    args = parser.parse_intermixed_args(argv)  # instructions may come before and after options
    if args.preview_mode not in PREVIEW_MODES:
        parser.error(f"PREVIEW_MODE must be one of {', '.join(PREVIEW_MODES)}, got {args.preview_mode!r}")
    instructions = [text.strip() for text in args.instructions] or [DEFAULT_INSTRUCTION]
    if not all(instructions):
        parser.error("an instruction cannot be empty")
    for problem in filter(None, map(attach_problem, args.attach)):
        parser.error(problem)
    if args.attach and is_undo_instruction(instructions[0]):
        parser.error("--attach goes with the first instruction, and /undo takes no attachments")
    state: Path = args.state.resolve()
    interactive = sys.stdin.isatty() and not args.once

    with local_stack(state) as stack:
        return run_demo(
            stack,
            instructions,
            interactive,
            attach=args.attach,
            step_functions=args.step_functions,
            preview_mode=args.preview_mode,
            thread=args.thread,
        )


def run_demo(
    stack: LocalStack,
    instructions: Sequence[str],
    interactive: bool,
    *,
    attach: Sequence[Path] = (),
    step_functions: bool = False,
    preview_mode: str = SHARED,
    thread: str = THREAD,
) -> int:
    bucket = stack.create_bucket(CLIENT)
    uploads = stack.create_bucket(CLIENT, ATTACHMENTS_BUCKET_TEMPLATE)
    preview_server = start_preview_server(stack.s3, bucket)
    port = preview_server.server_address[1]
    preview = f"http://127.0.0.1:{port}/"
    command, agent_label = agent_command()
    env = stack.supervisor_env(
        PREVIEW_URL=preview,
        PREVIEW_MODE=preview_mode,
        THREAD_PREVIEW_URL=f"http://{{threadId}}.localhost:{port}/",
        AGENT_COMMAND=command,
        ATTACHMENTS_BUCKET=ATTACHMENTS_BUCKET_TEMPLATE,
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
    say(f"attachments:      s3://{uploads} (--attach PATH)")
    if preview_mode == SHARED:
        say(f"preview:          {preview}")
    else:  # the response's previewUrl is this thread's
        say(f"previews:         one per thread, http://{{label}}.localhost:{port}/ (this one {thread_label(thread)})")
    layers = find_containment(env.get("SANDBOX", "auto")).layers()
    say("containment:      " + "; ".join(f"{name} {state}" for name, state in layers.items()))
    supervisor = stack.start_supervisor(env, log_path)
    orchestrator = boto3.client("stepfunctions", region_name=REGION, endpoint_url=endpoint) if step_functions else None
    machine = create_state_machine(orchestrator, queues["input"], attachments=True) if orchestrator else None
    if machine:
        say(f"state machine:    {machine} (sqs:sendMessage.waitForTaskToken into the input queue)")
    code = 0
    pending, attach_next, sent = list(instructions), list(attach), 0
    try:
        while pending:
            instruction = pending.pop(0)
            command_id = f"local-{uuid.uuid4().hex[:8]}"
            try:
                attachments = upload_attachments(stack.s3, uploads, command_id, attach_next)
            except OSError as error:  # the file changed since it was checked
                say(f"\ncannot attach {error.filename or ''}: {error.strerror or error}; nothing sent")
                code = 2
                break
            attach_next = []  # the first instruction's only
            body = {
                "instruction": instruction,
                "commandId": command_id,
                "chatThreadId": thread,
                "clientId": CLIENT,
                "userId": USER,
                "timestamp": int(time.time() * 1000),
                **({"attachments": attachments} if attachments else {}),
            }
            execution = None
            if machine:  # the anchor's newest shape, sent by the state machine with its task token
                task = {"messageId": command_id, "text": instruction, "threadId": thread, "projectId": CLIENT}
                execution = start_execution(orchestrator, machine, {**task, "userId": USER, "attachments": attachments})
            else:
                sqs.send_message(QueueUrl=queues["input"], MessageBody=json.dumps(body))
            carried = f" with {', '.join(item['name'] for item in attachments)}" if attachments else ""
            first = "" if sent else "  (the first run clones the site and runs npm ci)"
            say(f"\nsent {command_id}: {instruction!r}{carried}{first}")
            sent += 1
            response = wait_for(sqs, queues["output"], command_id)
            if response is None:
                say(f"no response in time; see {log_path}")
                code = 1
                break
            show(response, response.get("previewUrl") or preview)
            code = 0 if response["success"] else 1
            if execution:
                outcome = execution_outcome(orchestrator, execution)
                say(f"execution {outcome['status']}" + (f" ({outcome['error']})" if outcome["error"] else ""))
                code = 0 if outcome["status"] == "SUCCEEDED" else 1
            if code and pending:
                say(f"\nnot sent, as that one failed: {', '.join(map(repr, pending))}")
                pending = []
            if (
                not pending
                and interactive
                and (typed := input("\nnext instruction (/undo takes back the last; empty line to stop): ").strip())
            ):
                pending.append(typed)
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
