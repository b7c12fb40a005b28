"""Benchmark: the pipeline's own cost against a command's floor, the agent's time plus the build's.

The real supervisor on moto's server (SQS, S3), a bare git remote of the demo site, real workers, git, the
real Astro build of examples/demo-site and the hash deploy; the agent is tests/fake_claude (~45 ms: it
writes the home page and a notes file). One workspace, one thread: a first command clones and installs
(not counted), then --commands warm commands one after another, each waiting for its response.

Per step, the median (min-max) of what the worker measured; then, per command, its pipeline time (the
response's durationMs) over agent + build: the floor of a command. 1.00 would be a pipeline that costs
nothing beside the agent and the build. The end-to-end time from the send to the response received is
printed too (it adds SQS, starting the worker and the response).

With --build-mode warm the supervisor has BUILD_MODE=warm (steps/warm); --build-mode both measures cold,
then warm, and prints the ratio of their build steps and whole commands.

Run: .venv/bin/python bench/bench_pipeline.py [--commands 6] [--build-mode cold|warm|both]   (about a
minute per mode; npm's registry is used once)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
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


@dataclass
class Figures:
    per_step: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in STEPS})
    ratios: list[float] = field(default_factory=list)
    pipeline: list[float] = field(default_factory=list)
    end_to_end: list[float] = field(default_factory=list)


def measure(build_mode: str, commands: int) -> Figures:
    figures = Figures()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as folder, local_stack(Path(folder)) as stack:
        stack.create_bucket("acme")
        env = stack.supervisor_env(AGENT_COMMAND=f"{job_python()} {FAKE_AGENT}", LOG_FORMAT="json")
        stack.start_supervisor({**env, "BUILD_MODE": build_mode}, Path(folder) / "supervisor.log")
        warm, _ = run_command(stack, "First: clone and install")
        print(f"\nBUILD_MODE={build_mode}: first command (clone, npm ci): {warm['durationMs']} ms; ", end="")
        print(f"containment: {sandbox_of(Path(folder))}")
        for number in range(commands):
            response, wall = run_command(stack, f"Edit number {number}")
            durations = {step["name"]: step["durationMs"] for step in response["steps"]}
            for name in STEPS:
                figures.per_step[name].append(durations[name])
            floor = durations["agent"] + durations["build"]
            figures.ratios.append(response["durationMs"] / floor)
            figures.pipeline.append(response["durationMs"])
            figures.end_to_end.append(wall * 1000)
        if build_mode == "warm":
            built = [line for line in log_lines(Path(folder)) if line.get("event") == "built warm"]
            started = sum(line["serverStarted"] for line in built)
            print(f"built warm: {len(built)} of {commands + 1} builds, a server started for {started}")
    per_step = figures.per_step
    print(f"{commands} warm commands on one workspace (demo site, hash deploy), ms: median (min-max)")
    for name in STEPS:
        print(f"  {name:<10}{spread(per_step[name])}")
    own = [p - a - b for p, a, b in zip(figures.pipeline, per_step["agent"], per_step["build"], strict=True)]
    print(f"  {'pipeline':<10}{spread(figures.pipeline)}   (the response's durationMs)")
    print(f"  {'own cost':<10}{spread(own)}   (pipeline - agent - build)")
    print(f"  {'send→resp':<10}{spread(figures.end_to_end)}   (adds SQS, the worker's start, the response)")
    low, high = min(figures.ratios), max(figures.ratios)
    print(f"pipeline / (agent + build): median {statistics.median(figures.ratios):.3f} (min {low:.3f}, max {high:.3f})")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=6, help="warm commands measured (default 6)")
    parser.add_argument(
        "--build-mode", choices=("cold", "warm", "both"), default="cold", help="BUILD_MODE; both: cold, then warm"
    )
    args = parser.parse_args()
    modes = ("cold", "warm") if args.build_mode == "both" else (args.build_mode,)
    figures = {mode: measure(mode, args.commands) for mode in modes}
    if len(figures) == 2:
        cold, warm = figures["cold"], figures["warm"]
        build = statistics.median(warm.per_step["build"]) / statistics.median(cold.per_step["build"])
        whole = statistics.median(warm.pipeline) / statistics.median(cold.pipeline)
        print(f"\nwarm / cold, medians: build step {build:.2f} (saves {(1 - build) * 100:.0f} %), ", end="")
        print(f"whole command (durationMs) {whole:.2f} (saves {(1 - whole) * 100:.0f} %)")
    return 0


def log_lines(state: Path) -> list[dict[str, Any]]:
    found = []
    for line in (state / "supervisor.log").read_text().splitlines():
        with contextlib.suppress(ValueError):
            found.append(json.loads(line))
    return [line for line in found if isinstance(line, dict)]


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
