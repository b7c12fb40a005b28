"""What containment costs a command: the same pipeline with no layer (as before it), with the job identity, and
with the job identity and the kernel sandbox.

Each variant works in a workspace of its own (a client each), prewarmed once, untimed; then commands go
round-robin across the variants (so the machine's noise falls on all three alike), each one the whole
pipeline in a process of its own (as a worker: what the agent leaves is ended, which in this process
would end the local stack too), timed around the pipeline: workspace, the fake agent writing a file,
commit, a quick node build, the hash deploy to moto, the push to a bare remote. Prints median and p95 per
variant, and the extra time against no layer. Needs root (the job identity) and bubblewrap (the sandbox);
a variant that cannot run is named and left out.

    .venv/bin/python bench/bench_containment.py [--commands 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from steps.base import StepContext, workspace_path  # noqa: E402
from steps.git.repo import Git  # noqa: E402
from steps.job.runner import UNCONFINED, Containment, find_containment  # noqa: E402
from steps.pipeline import run_pipeline  # noqa: E402
from steps.processes.deps import ensure_dependencies  # noqa: E402
from supervisor.contract.command import parse_command  # noqa: E402
from supervisor.contract.config import load_config  # noqa: E402
from supervisor.local.stack import DEMO_SITE, local_stack  # noqa: E402

FAKE_AGENT = ROOT / "tests" / "fake_claude"
QUICK_BUILD = f"node {ROOT / 'tests' / 'quick_build.mjs'}"


def run_one(variant: str, body: str) -> int:
    """Child mode: one command through the pipeline; prints its seconds, or its failure."""
    config = load_config(require_input_queue=False)
    command = parse_command(body, config.repo_url)
    checkout = workspace_path(config, command)
    containment = variants()[variant]
    ctx = StepContext(config, command, checkout, Git(checkout, config), containment=containment)
    started = time.monotonic()
    response = run_pipeline(ctx, lambda *_: None)
    elapsed = time.monotonic() - started
    print(json.dumps({"seconds": elapsed, "error": None if response["success"] else response["error"]}))
    return 0


def variants() -> dict[str, Containment]:
    found = {"no layer (before)": UNCONFINED}
    layers = find_containment("auto")
    if layers.identity:
        found["job identity"] = Containment(identity=True, sandbox=False, sandbox_off_reason="measured without")
        if layers.sandbox:
            found["job identity + kernel sandbox"] = layers
        else:
            print(f"kernel sandbox left out: {layers.sandbox_off_reason}", file=sys.stderr)
    else:
        print("job identity and kernel sandbox left out: not running as root", file=sys.stderr)
    return found


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=20, help="timed commands per variant (default 20)")
    parser.add_argument("--run", nargs=2, metavar=("VARIANT", "BODY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        return run_one(*args.run)
    chosen = variants()
    with tempfile.TemporaryDirectory(prefix="bench-containment-") as folder, local_stack(Path(folder)) as stack:
        state = Path(folder)
        os.chmod(state, 0o711)  # the jobs pass through to the workspace
        installed = state / "installed"
        shutil.copytree(DEMO_SITE, installed, ignore=shutil.ignore_patterns("node_modules", "dist", ".astro"))
        ensure_dependencies(installed)
        env = stack.supervisor_env(AGENT_COMMAND=f"/usr/bin/python3 {FAKE_AGENT}", BUILD_COMMAND=QUICK_BUILD)
        os.environ.update({**env, "SANDBOX_ALLOWED_DOMAINS": ""})
        config = load_config(require_input_queue=False)
        clients = {name: f"bench{index}" for index, name in enumerate(chosen)}
        timings: dict[str, list[float]] = {name: [] for name in chosen}
        for round_number in range(args.commands + 1):  # round 0 clones and warms each workspace, untimed
            for name in chosen:
                body = json.dumps(
                    {
                        "instruction": f"Round {round_number}\n@fake write notes/{round_number}.txt {round_number}",
                        "commandId": f"c-{uuid.uuid4().hex[:8]}",
                        "chatThreadId": "containment",
                        "clientId": clients[name],
                        "userId": "u1",
                    }
                )
                command = parse_command(body, config.repo_url)
                stack.create_bucket(command.client_id)
                checkout = workspace_path(config, command)
                if round_number == 0 and not checkout.exists():
                    checkout.parent.mkdir(parents=True, exist_ok=True)
                    subprocess.run(["git", "clone", "-q", str(stack.remote), str(checkout)], check=True)
                    subprocess.run(["cp", "-al", str(installed / "node_modules"), str(checkout)], check=True)
                child = subprocess.run(
                    [sys.executable, __file__, "--run", name, body], capture_output=True, text=True, check=False
                )
                outcome = json.loads(child.stdout.strip().splitlines()[-1]) if child.stdout.strip() else None
                if outcome is None or outcome["error"]:
                    print(f"{name}: command failed: {outcome or child.stderr[-2000:]}")
                    return 1
                if round_number:
                    timings[name].append(outcome["seconds"])

    baseline = statistics.median(timings["no layer (before)"])
    baseline_p95 = percentile(timings["no layer (before)"], 0.95)
    print(f"\n{args.commands} commands per variant, round-robin (fake agent, quick node build, hash deploy, push)")
    print(f"{'variant':<32}{'median ms':>10}{'p95 ms':>8}{'extra median':>14}{'extra p95':>11}")
    for name, values in timings.items():
        median, p95 = statistics.median(values), percentile(values, 0.95)
        print(
            f"{name:<32}{median * 1000:>10.0f}{p95 * 1000:>8.0f}"
            f"{(median - baseline) * 1000:>+13.0f}{(p95 - baseline_p95) * 1000:>+10.0f}"
        )
    worst = max(statistics.median(values) - baseline for values in timings.values())
    print(f"extra time per command, every layer on: {worst * 1000:+.0f} ms (goal ≤ 100 ms median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
