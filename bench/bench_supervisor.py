"""Benchmark: interrupt latency, supervisor overhead per command, and supervisor memory over many commands.

Everything real but the agent: the supervisor as its own process, moto's server for SQS and S3, a bare git
remote, workers, git, the hash deploy. The agent is tests/fake_claude; the build is tests/quick_build.mjs
(a few ms of node), so the figures are about the machinery, not about Astro.

1. Interrupt latency, over --runs interrupts for each kind of tree: from sending the interrupting message
   to the new worker's first step starting (its `workspace started` progress event, stamped by the
   supervisor), and the part of it spent ending the old tree (the supervisor's `worker tree ended` log).
   "polite": the agent and a grandchild in its own session honour SIGINT. "rude": both ignore it, so the
   supervisor must wait INTERRUPT_GRACE_SECONDS and escalate. The obvious alternative, SIGINT to the direct
   child only (the seed's way), is run on the same rude tree in this process for comparison. Where the p50
   goes is read from the logs: receive, routing, ending the tree, the worker committing the interrupted
   work (waiting for it to start, its WIP commit and push), then the new command's worker.
2. Overhead, over --commands commands sent one after another (each waits for its response): end-to-end
   time (send → response received) minus the steps' own durations (what the worker measured) is the
   supervisor's machinery: SQS, routing, starting the worker, events, response, delete. Also reported:
   end-to-end minus only the time inside external commands (so our in-step Python counts as overhead).
   The alternative: the same pipeline run in-process (no supervisor, no SQS, no worker per command): one
   long-lived child process set up like a worker runs run_pipeline for each command (never this process:
   the agent step ends what is left below the process running it, and below this one is moto's server).
   Every command on both sides must succeed, or the bench stops: a failed step is no overhead figure.
3. Memory: the supervisor's RSS after 10 commands and after --commands commands.

Run: .venv/bin/python bench/bench_supervisor.py [--runs 20] [--commands 200]   (about 6 minutes)
     .venv/bin/python bench/bench_supervisor.py --interrupts-only [--trees polite] [--logs DIR]   (part 1 only)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from supervisor.common import proctree  # noqa: E402
from supervisor.local.stack import LocalStack, job_python, local_stack  # noqa: E402

FAKE_AGENT = ROOT / "tests" / "fake_claude"
QUICK_BUILD = f"node {ROOT / 'tests' / 'quick_build.mjs'}"
GRACE = 2.0


class Output:
    """Collects the output queue's bodies (responses and progress), with the time each was read."""

    def __init__(self, stack: LocalStack):
        self.stack = stack
        self.bodies: list[dict[str, Any]] = []

    def pump(self) -> None:
        reply = self.stack.sqs.receive_message(
            QueueUrl=self.stack.queues["output"], MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in reply.get("Messages", []):
            body = json.loads(message["Body"])
            body["_read"] = time.time()
            self.bodies.append(body)
            self.stack.sqs.delete_message(QueueUrl=self.stack.queues["output"], ReceiptHandle=message["ReceiptHandle"])

    def wait(self, command_id: str, kind: str = "response", step: str = "", timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in self.bodies:
                if body["commandId"] != command_id or body["type"] != kind:
                    continue
                if kind == "response" or (body["step"] == step and body["status"] == "started"):
                    return body
            self.pump()
        raise SystemExit(f"timed out waiting for {command_id} {kind} {step}")


def stamp(body: dict[str, Any]) -> float:
    return datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).timestamp()


def send(stack: LocalStack, command_id: str, instruction: str, thread: str) -> float:
    body = {
        "instruction": instruction,
        "commandId": command_id,
        "chatThreadId": thread,
        "clientId": "bench",
        "userId": "u1",
    }
    sent = time.time()
    stack.sqs.send_message(QueueUrl=stack.queues["input"], MessageBody=json.dumps(body))
    return sent


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def running(process: psutil.Process) -> bool:
    """The same process (not a reused pid) still running. A zombie is not: it is dead, only its exit status
    waits to be collected (by the supervisor, which reaps what it inherits on its next tick)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def log_events(log_path: Path, event: str) -> list[dict[str, Any]]:
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                found.append(record)
    return found


# Where an interrupt's latency goes: the log lines that mark each moment, in order (the command they
# belong to: the interrupted one, "old", or the interrupting one, "new"), and what ends at each.
MOMENTS = (
    ("new", "command received", "", "receive and admission"),
    ("old", "interrupting", "", "routing, tree snapshot"),
    ("old", "worker tree ended", "", "ending the old tree"),
    ("old", "worker started", "interrupted", "finishing worker ready"),
    ("old", "worker finished", "", "WIP commit and push"),
    ("new", "worker started", "run", "finisher's exit to new worker ready"),
)


def log_times(log_path: Path) -> dict[tuple[str, str, str], float]:
    """(commandId, event, mode) → the wall-clock time of its first log line."""
    times: dict[tuple[str, str, str], float] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            key = (str(record.get("commandId")), str(record.get("event")), str(record.get("mode", "")))
            times.setdefault(key, datetime.fromisoformat(record["time"]).timestamp())
            times.setdefault((key[0], key[1], ""), times[key])
    return times


def breakdown(log_path: Path, spans: list[tuple[str, str, float, float]]) -> dict[str, float]:
    """Median seconds of each part of the latency, from the interrupting send to the new first step."""
    times = log_times(log_path)
    parts: dict[str, list[float]] = {label: [] for *_, label in MOMENTS}
    parts["new worker to its first step"] = []
    for old, new, sent, first_step in spans:
        previous = sent
        for which, event, mode, label in MOMENTS:
            moment = times.get((old if which == "old" else new, event, mode))
            if moment is None:
                break
            parts[label].append(moment - previous)
            previous = moment
        else:
            parts["new worker to its first step"].append(first_step - previous)
    return {label: statistics.median(values) for label, values in parts.items() if values}


def interrupt_latency(
    stack: LocalStack, runs: int, log_path: Path, manners: tuple[str, ...] = ("polite", "rude")
) -> dict[str, dict[str, Any]]:
    env = stack.supervisor_env(
        AGENT_COMMAND=f"{job_python()} {FAKE_AGENT}",
        BUILD_COMMAND=QUICK_BUILD,
        PROGRESS_EVENTS="true",
        INTERRUPT_GRACE_SECONDS=str(GRACE),
        LOG_FORMAT="json",
        GIT_PUSH_ENABLED="true",
    )
    supervisor = stack.start_supervisor(env, log_path)
    output = Output(stack)
    send(stack, "warm-up", "@fake no-change", "warm")
    output.wait("warm-up", timeout=300)  # clone and npm ci happen here
    results: dict[str, dict[str, Any]] = {}
    for manner in manners:
        latencies, spans = [], []
        for index in range(runs):
            old, new = f"{manner}-old-{index}", f"{manner}-new-{index}"
            pidfile = stack.state / f"{old}.pid"
            rude = "\n@fake ignore-sigint" if manner == "rude" else ""
            send(stack, old, f"Slow\n@fake grandchild {pidfile} {manner}{rude}\n@fake sleep 60", f"{manner}-a")
            output.wait(old, "progress", "agent")
            while not pidfile.exists() or not pidfile.read_text().strip():
                time.sleep(0.01)
            grandchild = psutil.Process(int(pidfile.read_text()))
            sent = send(stack, new, "@fake no-change", f"{manner}-b")
            first_step = stamp(output.wait(new, "progress", "workspace"))
            latencies.append(first_step - sent)
            spans.append((old, new, sent, first_step))
            output.wait(old)
            output.wait(new)
            if running(grandchild):
                raise SystemExit(f"{old}: the grandchild survived the interrupt ({grandchild.status()})")
        ended = [r["tookMs"] / 1000 for r in log_events(log_path, "worker tree ended")[-runs:]]
        results[manner] = {
            "p50": statistics.median(latencies),
            "p95": percentile(latencies, 0.95),
            "tree_p50": statistics.median(ended),
            "tree_p95": percentile(ended, 0.95),
            "parts": breakdown(log_path, spans),
        }
    supervisor.send_signal(signal.SIGTERM)
    supervisor.wait(60)
    return results


def naive_interrupt(state: Path) -> tuple[int, int, float]:
    """SIGINT to the direct child only vs our whole-tree interrupt, on the same rude tree."""
    survivors = []
    for whole_tree in (False, True):
        pidfile = state / f"naive-{whole_tree}.pid"
        workdir = state / f"naive-{whole_tree}"
        workdir.mkdir(exist_ok=True)
        (workdir / "src" / "pages").mkdir(parents=True, exist_ok=True)
        (workdir / "src" / "pages" / "index.astro").write_text("<Base>\n</Base>\n")
        agent = subprocess.Popen(
            [sys.executable, str(FAKE_AGENT), "-p", f"x\n@fake grandchild {pidfile}\n@fake sleep 60"],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        while not pidfile.exists():
            time.sleep(0.01)
        grandchild = int(pidfile.read_text())
        started = time.monotonic()
        if whole_tree:
            proctree.end_tree(proctree.snapshot(agent.pid), grace=GRACE)
        else:
            agent.send_signal(signal.SIGINT)
            agent.wait(10)
            time.sleep(GRACE)
        took = time.monotonic() - started
        survivors.append(int(psutil.pid_exists(grandchild) and psutil.Process(grandchild).status() != "zombie"))
        if survivors[-1]:
            os.kill(grandchild, signal.SIGKILL)
        agent.wait(10)
    return survivors[0], survivors[1], took


def overhead_and_memory(stack: LocalStack, commands: int, log_path: Path) -> dict[str, float]:
    env = stack.supervisor_env(
        AGENT_COMMAND=f"{job_python()} {FAKE_AGENT}",
        BUILD_COMMAND=QUICK_BUILD,
        LOG_FORMAT="json",
    )
    supervisor = stack.start_supervisor(env, log_path)
    process = psutil.Process(supervisor.pid)
    output = Output(stack)
    send(stack, "warm", "@fake no-change", "warm")
    output.wait("warm", timeout=300)
    machinery, outside_commands = [], []
    rss: dict[int, int] = {}
    for index in range(1, commands + 1):
        command_id = f"cmd-{index}"
        sent = send(stack, command_id, f"Change {index}\n@fake write bench/{index}.txt {index}", "overhead")
        response = output.wait(command_id)
        if not response["success"]:
            raise SystemExit(f"{command_id} failed, so its time is no overhead figure: {response['error']}")
        end_to_end = response["_read"] - sent
        machinery.append(end_to_end - sum(step["durationMs"] for step in response["steps"]) / 1000)
        outside_commands.append(end_to_end)
        if index in (10, commands):
            time.sleep(0.5)
            rss[index] = process.memory_info().rss
    finished = {r["commandId"]: r["commandMs"] / 1000 for r in log_events(log_path, "worker finished")}
    outside_commands = [e2e - finished[f"cmd-{i + 1}"] for i, e2e in enumerate(outside_commands)]
    supervisor.send_signal(signal.SIGTERM)
    supervisor.wait(60)
    return {
        "machinery_median": statistics.median(machinery),
        "machinery_p95": percentile(machinery, 0.95),
        "non_command_median": statistics.median(outside_commands),
        "rss_10": rss[10],
        f"rss_{commands}": rss[commands],
        "commands": commands,
    }


def in_process_overhead(stack: LocalStack, runs: int, log_path: Path) -> float:
    """The alternative: the same pipeline, run by run_pipeline for each command in one long-lived process
    (no supervisor, no SQS, no worker per command); the median of its time outside external commands.

    That process is a child of ours, never this one: after the agent, a step ends every process below
    the one running the pipeline (what the agent left running), and below this one is moto's server.
    It sets itself up as a worker does (subreaper, the containment found, its umask), so the two sides
    run the same steps the same way, and every command must succeed for the figure to count."""
    env = stack.supervisor_env(AGENT_COMMAND=f"{job_python()} {FAKE_AGENT}", BUILD_COMMAND=QUICK_BUILD)
    with log_path.open("ab") as log:
        reply = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--in-process-child", str(runs)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            timeout=60 * runs,
            check=False,
        )
    if reply.returncode != 0:
        raise SystemExit(f"the in-process pipeline failed (exit {reply.returncode}); see {log_path}")
    return statistics.median(json.loads(reply.stdout))


def in_process_child(runs: int) -> int:
    """`--in-process-child N`: run N commands through run_pipeline here; print their non-command seconds."""
    from steps.base import StepContext, workspace_path
    from steps.git.lock import workspace_lock
    from steps.git.repo import Git
    from steps.job.identity import JOB_UMASK
    from steps.job.runner import find_containment
    from steps.pipeline import run_pipeline
    from steps.processes import shell
    from supervisor.common.logs import setup_logging
    from supervisor.common.proctree import become_subreaper
    from supervisor.contract.command import parse_command
    from supervisor.contract.config import load_config

    config = load_config(require_input_queue=False)
    setup_logging(config.log_format, "in-process")
    become_subreaper()
    containment = find_containment(config.sandbox)
    if containment.identity:
        os.umask(JOB_UMASK)
    non_command = []
    for index in range(runs):
        body = {
            "instruction": f"In process {index}\n@fake write inproc/{index}.txt {index}",
            "commandId": f"inproc-{uuid.uuid4().hex[:6]}",
            "chatThreadId": "overhead",
            "clientId": "bench",
            "userId": "u1",
        }
        started, before = time.monotonic(), shell.command_seconds
        command = parse_command(json.dumps(body), config.repo_url)
        checkout = workspace_path(config, command)
        ctx = StepContext(config=config, command=command, checkout=checkout, git=Git(checkout, config))
        ctx.containment = containment
        with workspace_lock(checkout):
            response = run_pipeline(ctx, lambda *_: None)
        non_command.append(time.monotonic() - started - (shell.command_seconds - before))
        if not response["success"]:
            print(f"in-process command {index} failed: {response['error']}", file=sys.stderr)
            return 1
    print(json.dumps(non_command))
    return 0


def print_latency(latency: dict[str, dict[str, Any]], runs: int) -> None:
    print(f"\ninterrupt latency over {runs} interrupts each (send → new worker's first step), grace {GRACE:g} s")
    print(f"{'tree':<8}{'p50 s':>8}{'p95 s':>8}{'tree gone p50':>15}{'p95':>7}   goal")
    goals = {"polite": 1.0, "rude": GRACE + 1.0}
    for manner, row in latency.items():
        verdict = "met" if row["p95"] <= goals[manner] else "MISSED"
        print(
            f"{manner:<8}{row['p50']:>8.3f}{row['p95']:>8.3f}{row['tree_p50']:>15.3f}{row['tree_p95']:>7.3f}"
            f"   p95 ≤ {goals[manner]:g} s: {verdict}"
        )
    for manner, row in latency.items():
        print(f"where the {manner} p50 goes (median of each part, s; they need not add up to the p50):")
        for label, seconds in row["parts"].items():
            print(f"  {label:<40}{seconds:>7.3f}")


def print_overhead(overhead: dict[str, float], in_process: float) -> None:
    print(f"\nsupervisor overhead over {overhead['commands']} commands (trivial steps)")
    print(
        f"  machinery (end-to-end − steps' durations): median {overhead['machinery_median'] * 1000:.0f} ms, "
        f"p95 {overhead['machinery_p95'] * 1000:.0f} ms   goal median ≤ 150 ms: "
        f"{'met' if overhead['machinery_median'] <= 0.150 else 'MISSED'}"
    )
    print(
        f"  everything but external commands: median {overhead['non_command_median'] * 1000:.0f} ms; "
        f"in-process pipeline (no supervisor, no worker): {in_process * 1000:.0f} ms; "
        f"ratio {overhead['non_command_median'] / in_process:.1f}x"
    )
    rss_10, rss_n = overhead["rss_10"], overhead[f"rss_{overhead['commands']}"]
    growth = (rss_n - rss_10) / rss_10 * 100
    print(
        f"\nsupervisor RSS: {rss_10 / 2**20:.1f} MiB after 10 commands, {rss_n / 2**20:.1f} MiB after "
        f"{overhead['commands']} ({growth:+.1f} %)   goal within 10 %: {'met' if abs(growth) <= 10 else 'MISSED'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="interrupts per kind of tree (default 20)")
    parser.add_argument("--commands", type=int, default=200, help="commands for overhead and memory (default 200)")
    parser.add_argument("--interrupts-only", action="store_true", help="measure interrupt latency only (part 1)")
    parser.add_argument(
        "--trees", default="polite,rude", help="kinds of tree to interrupt, comma-separated (default polite,rude)"
    )
    parser.add_argument("--logs", type=Path, help="keep the supervisor's logs in this folder (default: thrown away)")
    parser.add_argument("--in-process-child", type=int, metavar="N", help=argparse.SUPPRESS)  # see in_process_overhead
    args = parser.parse_args()
    if args.in_process_child:
        return in_process_child(args.in_process_child)
    manners = tuple(name for name in args.trees.split(",") if name)
    if not manners or set(manners) - {"polite", "rude"}:
        parser.error("--trees takes polite, rude or both")
    if args.commands < 10 and not args.interrupts_only:
        parser.error("--commands must be at least 10 (the RSS is read after 10)")
    if args.logs:
        args.logs = args.logs.resolve()
        if any((args.logs / name).exists() for name in ("interrupts.log", "overhead.log", "in-process.log")):
            parser.error(f"{args.logs} holds the logs of an earlier run (they are read back): name an empty folder")
    # The ladder is measured, not the sandbox (bench_containment.py): the fake agent's pid files must be the
    # host's, in a folder its job uid may write.
    os.environ["SANDBOX"] = "off"
    with tempfile.TemporaryDirectory(prefix="bench-supervisor-") as folder, local_stack(Path(folder)) as stack:
        os.chmod(folder, 0o1777)
        stack.create_bucket("bench")
        state = Path(folder)
        logs = args.logs or state
        logs.mkdir(parents=True, exist_ok=True)
        latency = interrupt_latency(stack, args.runs, logs / "interrupts.log", manners)
        print_latency(latency, args.runs)
        if args.interrupts_only:
            return 0
        naive_survivors, ours_survivors, _ = naive_interrupt(state)
        overhead = overhead_and_memory(stack, args.commands, logs / "overhead.log")
        in_process = in_process_overhead(stack, 20, logs / "in-process.log")

    print(
        f"alternative, SIGINT to the direct child only (rude tree): {naive_survivors} survivor(s); "
        f"whole-tree interrupt: {ours_survivors}"
    )
    print_overhead(overhead, in_process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
