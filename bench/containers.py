"""Several containers on one queue (LEASE_TABLE): throughput with 1, 2 and 3 supervisors, the latency a
lease adds to a command, and the time from kill -9 of an owner to the takeover's first step.

The stack is local: moto in its own process (SQS, S3, DynamoDB), a bare git remote, one shared workspace
root (the EFS layout), the fake agent sleeping a fixed 2 s, the quick build, MAX_WORKERS=1 per
supervisor. Load is closed-loop: six chat users, one workspace each, each sending its next command as
soon as the last one is answered, so nothing is superseded and the queue never floods.

- Throughput: commands a minute with 1, 2, 3 supervisors, and the ratio to one (the goal: ≥ 2.7 at 3);
  the obvious alternative last, one supervisor with MAX_WORKERS=3 and no leases (what the machine allows).
  The clock starts once every supervisor is up. The rate is the steady one, between the sixth answer and
  the sixth from last (every container's first command and the tail, when fewer users are left than
  containers, left out); the whole run's rate is printed beside it. CPU seconds per command: the
  machine's, moto's and the supervisors' own. PROGRESS_EVENTS stays at its default (off; `--progress`).
- Lease latency: one command at a time (round-robin over the workspaces), one supervisor with and one
  without LEASE_TABLE, both up, taking turns; the difference of the medians and of the p95s is what the
  lease adds (a take per command: the round trip outlasts the idle release).
- Takeover: two supervisors; the owner of a busy workspace is killed -9; seconds until the survivor took
  the lease, and until the command's first step started again (VISIBILITY_TIMEOUT_SECONDS=LEASE_SECONDS).
- One killed: three supervisors on the closed loop, one killed -9 a third of the way in
  (VISIBILITY_TIMEOUT_SECONDS=LEASE_SECONDS): the whole run's rate, every command answered once (first,
  so a failure shows before the long part).

    .venv/bin/python bench/containers.py                                       # the bench (README quotes it)
    .venv/bin/python bench/containers.py --throughput-only --counts 1,3        # throughput only, 5 minutes
    .venv/bin/python bench/containers.py --kill-only                           # one killed mid-way, 2 minutes
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from helpers import prewarm_checkout  # noqa: E402
from soak import installed_site  # noqa: E402

from supervisor.local.stack import REGION, LocalStack, job_python, local_stack  # noqa: E402
from supervisor.sharing.lease_table import create_table  # noqa: E402

FAKE_AGENT = ROOT / "tests" / "fake_claude"
QUICK_BUILD = f"node {ROOT / 'tests' / 'quick_build.mjs'}"
CLIENTS = tuple(f"site{i}" for i in range(6))


class Cluster:
    """n supervisors on fresh queues (and a fresh lease table), sharing the stack's workspace root."""

    def __init__(self, stack: LocalStack, logs: Path, count: int, *, leases: bool, lease_seconds: float, **env: str):
        suffix = uuid.uuid4().hex[:6]
        self.stack, self.sqs = stack, stack.sqs
        self.input = self.sqs.create_queue(QueueName=f"bench-in-{suffix}")["QueueUrl"]
        self.output = self.sqs.create_queue(QueueName=f"bench-out-{suffix}")["QueueUrl"]
        overrides = {
            "INPUT_QUEUE_URL": self.input,
            "OUTPUT_QUEUE_URL": self.output,
            "AGENT_COMMAND": f"{job_python()} {FAKE_AGENT}",
            "BUILD_COMMAND": QUICK_BUILD,
            "PROGRESS_EVENTS": "false",  # the default; the takeover turns them on to see the first step
            "LOG_FORMAT": "json",
            "SHUTDOWN_GRACE_SECONDS": "10",
            **env,
        }
        if leases:
            table = f"bench-leases-{suffix}"
            create_table(boto3.client("dynamodb", region_name=REGION, endpoint_url=stack.endpoint), table)
            overrides.update({"LEASE_TABLE": table, "LEASE_SECONDS": str(lease_seconds)})
        self.logs = [logs / f"{suffix}-supervisor-{i}.log" for i in range(count)]
        self.processes = [stack.start_supervisor(stack.supervisor_env(**overrides), log) for log in self.logs]
        self._ready_event = "sharing the queue" if leases else "supervisor started"
        self.tag = suffix  # in every command id: the workspaces outlive a run, their branches too
        self.sent: dict[str, float] = {}
        self.bodies: list[dict[str, Any]] = []

    def wait_ready(self, timeout: float = 60) -> None:
        """Until every supervisor has started (its inbox made, with leases), so that start-up, slower on
        a machine carrying three, is not counted as throughput."""
        deadline = time.monotonic() + timeout
        while not all(
            any(line.get("event") == self._ready_event for line in self.log_lines(i)) for i in range(len(self.logs))
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the supervisors did not start")
            time.sleep(0.1)
        time.sleep(1)  # each supervisor's spare worker finishes its imports

    def send(self, client: str, command_id: str, seconds: float) -> None:
        command_id = f"{command_id}-{self.tag}"
        body = {"instruction": f"Note {command_id}\n@fake sleep {seconds}", "commandId": command_id}
        body.update({"chatThreadId": f"t-{client}", "clientId": client, "userId": "u1"})  # one remote for all
        self.sent[command_id] = time.monotonic()
        self.sqs.send_message(QueueUrl=self.input, MessageBody=json.dumps(body))

    def read(self) -> list[dict[str, Any]]:
        """What the output queue holds now (up to a second's wait), each with the time it was read."""
        reply = self.sqs.receive_message(QueueUrl=self.output, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = reply.get("Messages", [])
        found = [{**json.loads(m["Body"]), "_read": time.monotonic()} for m in messages]
        if messages:  # one call, as a consumer would: the load generator's own SQS calls load moto too
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            self.sqs.delete_message_batch(QueueUrl=self.output, Entries=entries)
        self.bodies += found
        return found

    def log_lines(self, index: int) -> list[dict[str, Any]]:
        if not self.logs[index].exists():
            return []
        lines = self.logs[index].read_text(errors="replace").splitlines()
        # A supervisor may be writing its last line right now: a half-written one is left for the next look.
        return [json.loads(line) for line in lines if line.startswith("{") and line.endswith("}")]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            process.wait(60)


class CpuMeter:
    """CPU seconds (user + system) spent during a run: the whole machine, moto, and the supervisors
    themselves (their workers, git, node and the agent are the rest, with this load generator)."""

    def __init__(self, cluster: Cluster):
        self.moto = next(p for p in psutil.Process().children() if "moto_process" in " ".join(p.cmdline()))
        self.supervisors = [psutil.Process(p.pid) for p in cluster.processes]
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        machine = psutil.cpu_times()
        return {
            "machine": machine.user + machine.system,
            "moto": sum(self.moto.cpu_times()[:2]),
            "supervisors": sum(sum(p.cpu_times()[:2]) for p in self.supervisors),
        }

    def per_command(self, commands: int) -> dict[str, float]:
        end = self._read()
        spent = {k: (end[k] - self.start[k]) / commands for k in end}
        spent["rest"] = spent["machine"] - spent["moto"] - spent["supervisors"]
        return {k: round(v, 3) for k, v in spent.items()}


def closed_loop(
    cluster: Cluster, per_workspace: int, agent_seconds: float, kill_after: int | None = None
) -> list[float]:
    """Each workspace's user sends its next command when the last is answered; when each answer came
    (seconds from the first send). `kill_after`: that many answers in, the first supervisor is killed -9.
    A second answer to a command is an error (nothing may be answered twice, killed or not)."""
    left = {client: per_workspace for client in CLIENTS}
    started = time.monotonic()
    for client in CLIENTS:
        cluster.send(client, f"{client}-{left[client]}", agent_seconds)
    answered: list[float] = []
    seen: set[str] = set()
    while any(left.values()):
        if time.monotonic() - started > 600:
            raise RuntimeError(f"stuck: {left}")
        if kill_after is not None and len(answered) >= kill_after and cluster.processes[0].poll() is None:
            cluster.processes[0].kill()
            cluster.processes[0].wait()
            print(f"killed supervisor 0 (-9) after {len(answered)} answers", file=sys.stderr)
        for body in cluster.read():
            if body["type"] != "response":
                continue
            if not body["success"]:
                raise RuntimeError(f"a command failed: {body.get('errorCode')} {body.get('error')}")
            if body["commandId"] in seen:
                raise RuntimeError(f"answered twice: {body['commandId']}")
            seen.add(body["commandId"])
            answered.append(body["_read"] - started)
            client = body["commandId"].split("-")[0]
            left[client] -= 1
            if left[client]:
                cluster.send(client, f"{client}-{left[client]}", agent_seconds)
    return sorted(answered)


def steady_rate(answered: list[float], edge: int) -> float:
    """Commands a minute between the `edge`-th answer and the `edge`-th from last: the ramp-up (every
    container's first command) and the tail (fewer users left than workers) left out."""
    window = answered[edge - 1 : len(answered) - edge + 1]
    return (len(window) - 1) / (window[-1] - window[0]) * 60


def one_at_a_time(cluster: Cluster, count: int, agent_seconds: float, start: int = 0) -> list[float]:
    latencies = []
    for index in range(start, start + count):
        cluster.send(CLIENTS[index % len(CLIENTS)], f"{CLIENTS[index % len(CLIENTS)]}-solo{index}", agent_seconds)
        command_id = f"{CLIENTS[index % len(CLIENTS)]}-solo{index}-{cluster.tag}"
        while not (done := [b for b in cluster.read() if b["type"] == "response" and b["commandId"] == command_id]):
            pass
        latencies.append(done[0]["_read"] - cluster.sent[command_id])
    return latencies


def takeover(stack: LocalStack, logs: Path, lease_seconds: float) -> dict[str, float]:
    seconds = str(int(lease_seconds))
    cluster = Cluster(
        stack,
        logs,
        2,
        leases=True,
        lease_seconds=lease_seconds,
        VISIBILITY_TIMEOUT_SECONDS=seconds,
        MAX_WORKERS="1",
        PROGRESS_EVENTS="true",
    )
    try:
        cluster.wait_ready()
        cluster.send(CLIENTS[0], "long", 60)
        long = f"long-{cluster.tag}"
        while not any(b.get("step") == "agent" and b["commandId"] == long for b in cluster.read()):
            pass
        time.sleep(0.5)
        owner = next(i for i in (0, 1) if any(line.get("event") == "worker started" for line in cluster.log_lines(i)))
        killed_wall, killed = time.time(), time.monotonic()
        cluster.processes[owner].kill()
        cluster.processes[owner].wait()
        seen = len(cluster.bodies)
        while not any(
            b.get("step") == "workspace" and b["commandId"] == long and b.get("status") == "started"
            for b in cluster.bodies[seen:]
        ):
            cluster.read()
        first_step = next(b for b in cluster.bodies[seen:] if b.get("step") == "workspace")["_read"] - killed
        taken = next(
            datetime.fromisoformat(line["time"]).timestamp() - killed_wall
            for line in cluster.log_lines(1 - owner)
            if line.get("event") == "workspace lease taken" and line.get("from")
        )
        return {"leaseTakenSeconds": round(taken, 2), "firstStepSeconds": round(first_step, 2)}
    finally:
        cluster.stop()


def one_killed(stack: LocalStack, logs: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Three supervisors, the closed loop, one killed -9 a third of the way in: the whole run's rate, and
    that every command was answered once, successfully (closed_loop raises otherwise)."""
    seconds = str(int(args.lease_seconds))
    options = {"VISIBILITY_TIMEOUT_SECONDS": seconds, "MAX_WORKERS": "1"}
    cluster = Cluster(stack, logs, 3, leases=True, lease_seconds=args.lease_seconds, **options)
    try:
        cluster.wait_ready()
        total = args.per_workspace * len(CLIENTS)
        answered = closed_loop(cluster, args.per_workspace, args.agent_seconds, kill_after=total // 3)
    finally:
        cluster.stop()
    rate = len(answered) / answered[-1] * 60
    print(f"3 supervisors, one killed: {rate:.1f} commands/min over the whole run", file=sys.stderr)
    return {"commands": total, "answeredOnce": len(answered), "commandsPerMinute": round(rate, 1)}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-workspace", type=int, default=8, help="commands per workspace per run")
    parser.add_argument("--agent-seconds", type=float, default=2.0)
    parser.add_argument("--lease-seconds", type=float, default=10.0)
    parser.add_argument("--latency-samples", type=int, default=24, help="commands per variant (default %(default)s)")
    parser.add_argument("--counts", default="1,2,3", help="supervisor counts to measure (default %(default)s)")
    parser.add_argument("--logs", type=Path, help="keep the supervisors' logs in this folder")
    parser.add_argument("--progress", action="store_true", help="PROGRESS_EVENTS=true in the throughput runs")
    parser.add_argument("--throughput-only", action="store_true", help="skip the lease latency and the takeover")
    parser.add_argument("--kill-only", action="store_true", help="only the run of three with one killed mid-way")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.per_workspace < 2:
        parser.error(
            "--per-workspace must be at least 2: the steady rate leaves out one command of each user at both ends"
        )
    figures: dict[str, Any] = {
        "commandsPerRun": args.per_workspace * len(CLIENTS),
        "leaseSeconds": args.lease_seconds,
        "progressEvents": args.progress,
    }
    with tempfile.TemporaryDirectory(prefix="containers-bench-") as folder, local_stack(Path(folder)) as stack:
        logs = args.logs or Path(folder) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        installed = installed_site()
        for client in CLIENTS:
            stack.create_bucket(client)
            prewarm_checkout(Path(folder) / "workspace", stack.remote, installed, client, "u1")
        if not args.throughput_only:
            figures["oneKilled"] = one_killed(stack, logs, args)
        if args.kill_only:
            print(json.dumps(figures, indent=None if args.json else 2))
            return 0
        rates: dict[str, float] = {}
        whole: dict[str, float] = {}
        cpu: dict[str, dict[str, float]] = {}
        counts = [int(c) for c in args.counts.split(",")]
        # The obvious alternative last: one container with as many workers, no leases (the machine's limit).
        runs = [(f"{n}", n, 1, True) for n in counts] + [(f"1x{max(counts)}", 1, max(counts), False)]
        for name, count, workers, leases in runs:
            lease_seconds, max_workers = args.lease_seconds, str(workers)
            progress = str(args.progress).lower()
            cluster = Cluster(
                stack,
                logs,
                count,
                leases=leases,
                lease_seconds=lease_seconds,
                MAX_WORKERS=max_workers,
                PROGRESS_EVENTS=progress,
            )
            try:
                cluster.wait_ready()
                meter = CpuMeter(cluster)
                answered = closed_loop(cluster, args.per_workspace, args.agent_seconds)
                cpu[name] = meter.per_command(len(answered))
            finally:
                cluster.stop()
            rates[name] = steady_rate(answered, edge=len(CLIENTS))
            whole[name] = len(answered) / answered[-1] * 60
            print(
                f"{count} supervisor(s) × {workers} worker(s): {rates[name]:.1f} commands/min steady, "
                f"{whole[name]:.1f} over the whole run",
                file=sys.stderr,
            )
        figures["commandsPerMinute"] = {k: round(v, 1) for k, v in rates.items()}
        figures["speedup"] = {k: round(v / rates[str(counts[0])], 2) for k, v in rates.items()}
        figures["cpuSecondsPerCommand"] = cpu
        figures["wholeRun"] = {
            "commandsPerMinute": {k: round(v, 1) for k, v in whole.items()},
            "speedup": {k: round(v / whole[str(counts[0])], 2) for k, v in whole.items()},
        }
        if args.throughput_only:
            print(json.dumps(figures, indent=None if args.json else 2))
            return 0
        # Both at once, on queues of their own, one command at a time in turn: drift hits both alike.
        plain, leased = (
            Cluster(stack, logs, 1, leases=leases, lease_seconds=args.lease_seconds, MAX_WORKERS="1")
            for leases in (False, True)
        )
        try:
            plain.wait_ready()
            leased.wait_ready()
            samples: dict[str, list[float]] = {"withoutLease": [], "withLease": []}
            for index in range(args.latency_samples):
                samples["withoutLease"] += one_at_a_time(plain, 1, args.agent_seconds, start=index)
                samples["withLease"] += one_at_a_time(leased, 1, args.agent_seconds, start=index)
        finally:
            plain.stop()
            leased.stop()
        for key, latencies in samples.items():
            figures[key] = {
                "medianSeconds": round(statistics.median(latencies), 3),
                "p95Seconds": round(percentile(latencies, 0.95), 3),
            }
        figures["leaseAdds"] = {
            k: round(figures["withLease"][k] - figures["withoutLease"][k], 3) for k in ("medianSeconds", "p95Seconds")
        }
        figures["takeover"] = takeover(stack, logs, args.lease_seconds)
    print(json.dumps(figures, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
