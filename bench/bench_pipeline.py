"""Benchmark: the pipeline's own cost against a command's floor, the agent's time plus the build's.

The real supervisor on moto's server (SQS, S3), a bare git remote of the demo site, real workers, git, the
real Astro build of examples/demo-site and the hash deploy; the agent is tests/fake_claude (~45 ms: it
writes the home page and a notes file). One workspace, one thread: a first command clones and installs
(not counted), then --commands warm commands one after another, each waiting for its response.

Per step, the median (min-max) of what the worker measured; then, per command, its pipeline time (the
response's durationMs) over agent + build: the floor of a command. 1.00 would be a pipeline that costs
nothing beside the agent and the build. The end-to-end time from the send to the response received is
printed too (it adds SQS, starting the worker and the response).

Run: .venv/bin/python bench/bench_pipeline.py [--commands 6]   (about a minute; npm's registry is used once)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from supervisor.local.stack import LocalStack, job_python, local_stack  # noqa: E402

FAKE_AGENT = ROOT / "tests" / "fake_claude"
STEPS = ("workspace", "agent", "commit", "build", "deploy", "push")


def send(stack: LocalStack, command_id: str, instruction: str) -> float:
    body = {
        "commandId": command_id,
        "chatThreadId": "bench",
        "clientId": "acme",
        "userId": "u1",
        "instruction": instruction,
    }
    sent = time.monotonic()
    stack.sqs.send_message(QueueUrl=stack.queues["input"], MessageBody=json.dumps(body))
    return sent


def response_to(stack: LocalStack, command_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = stack.sqs.receive_message(QueueUrl=stack.queues["output"], WaitTimeSeconds=1, MaxNumberOfMessages=10)
        for item in got.get("Messages", []):
            stack.sqs.delete_message(QueueUrl=stack.queues["output"], ReceiptHandle=item["ReceiptHandle"])
            body = json.loads(item["Body"])
            if body.get("commandId") == command_id and body.get("type") == "response":
                return body
    raise TimeoutError(f"no response to {command_id} within {timeout:.0f} s")


def run_command(stack: LocalStack, instruction: str) -> tuple[dict[str, Any], float]:
    command_id = f"bench-{uuid.uuid4().hex[:8]}"
    sent = send(stack, command_id, instruction)
    response = response_to(stack, command_id)
    if not response.get("success"):
        raise RuntimeError(f"command failed: {response.get('errorCode')} {response.get('error')}")
    return response, time.monotonic() - sent


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.0f} ({min(values):.0f}-{max(values):.0f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=6, help="warm commands measured (default 6)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as folder, local_stack(Path(folder)) as stack:
        stack.create_bucket("acme")
        env = stack.supervisor_env(AGENT_COMMAND=f"{job_python()} {FAKE_AGENT}", LOG_FORMAT="json")
        stack.start_supervisor(env, Path(folder) / "supervisor.log")
        warm, _ = run_command(stack, "First: clone and install")
        print(f"first command (clone, npm ci): {warm['durationMs']} ms; containment: {sandbox_of(Path(folder))}")
        per_step: dict[str, list[float]] = {name: [] for name in STEPS}
        ratios, pipeline, end_to_end = [], [], []
        for number in range(args.commands):
            response, wall = run_command(stack, f"Edit number {number}")
            durations = {step["name"]: step["durationMs"] for step in response["steps"]}
            for name in STEPS:
                per_step[name].append(durations[name])
            floor = durations["agent"] + durations["build"]
            ratios.append(response["durationMs"] / floor)
            pipeline.append(response["durationMs"])
            end_to_end.append(wall * 1000)
    print(f"\n{args.commands} warm commands on one workspace (demo site, hash deploy), ms: median (min-max)")
    for name in STEPS:
        print(f"  {name:<10}{spread(per_step[name])}")
    own = [p - a - b for p, a, b in zip(pipeline, per_step["agent"], per_step["build"], strict=True)]
    print(f"  {'pipeline':<10}{spread(pipeline)}   (the response's durationMs)")
    print(f"  {'own cost':<10}{spread(own)}   (pipeline - agent - build)")
    print(f"  {'send→resp':<10}{spread(end_to_end)}   (adds SQS, the worker's start, the response)")
    low, high = min(ratios), max(ratios)
    print(f"\npipeline / (agent + build): median {statistics.median(ratios):.3f} (min {low:.3f}, max {high:.3f})")
    return 0


def sandbox_of(state: Path) -> str:
    """The containment the supervisor found (its first log line): containment is part of the figure."""
    for line in (state / "supervisor.log").read_text().splitlines():
        if "containment:" in line:
            try:
                return str(json.loads(line).get("event", "")).removeprefix("containment: ")
            except ValueError:
                continue
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
