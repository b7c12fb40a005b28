"""Several containers on one queue (LEASE_TABLE): throughput with 1, 2 and 3 supervisors, the latency a
lease adds to a command, and the time from kill -9 of an owner to the takeover's first step.

The stack is local: moto in its own process (SQS, S3, DynamoDB), a bare git remote, one shared workspace
root (the EFS layout), the fake agent sleeping a fixed 2 s, the quick build, MAX_WORKERS=1 per
supervisor. Load is closed-loop: six chat users, one workspace each, each sending its next command as
soon as the last one is answered, so nothing is superseded and the queue never floods.

- Throughput: commands a minute with 1, 2, 3 supervisors, and the ratio to one (the goal: ≥ 2.7 at 3);
  the obvious alternative last, one supervisor with MAX_WORKERS=3 and no leases (what the machine allows).
- Lease latency: one command at a time (round-robin over the workspaces), one supervisor with and one
  without LEASE_TABLE, both up, taking turns; the difference of the medians and of the p95s is what the
  lease adds (a take per command: the round trip outlasts the idle release).
- Takeover: two supervisors; the owner of a busy workspace is killed -9; seconds until the survivor took
  the lease, and until the command's first step started again (VISIBILITY_TIMEOUT_SECONDS=LEASE_SECONDS).

    .venv/bin/python bench/containers.py                    # the bench (README quotes it)
    .venv/bin/python bench/containers.py --per-workspace 2  # quicker, noisier
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

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from helpers import prewarm_checkout  # noqa: E402
from soak import installed_site  # noqa: E402

from supervisor.local.stack import REGION, LocalStack, local_stack  # noqa: E402
from supervisor.workspace_leases import create_table  # noqa: E402

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
            "AGENT_COMMAND": f"{sys.executable} {FAKE_AGENT}",
            "BUILD_COMMAND": QUICK_BUILD,
            "PROGRESS_EVENTS": "true",
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
        self.tag = suffix  # in every command id: the workspaces outlive a run, their branches too
        self.sent: dict[str, float] = {}
        self.bodies: list[dict[str, Any]] = []

    def send(self, client: str, command_id: str, seconds: float) -> None:
        command_id = f"{command_id}-{self.tag}"
        body = {"instruction": f"Note {command_id}\n@fake sleep {seconds}", "commandId": command_id}
        body.update({"chatThreadId": f"t-{client}", "clientId": client, "userId": "u1"})  # one remote for all
        self.sent[command_id] = time.monotonic()
        self.sqs.send_message(QueueUrl=self.input, MessageBody=json.dumps(body))

    def read(self) -> list[dict[str, Any]]:
        """What the output queue holds now (up to a second's wait), each with the time it was read."""
        reply = self.sqs.receive_message(QueueUrl=self.output, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        found = []
        for message in reply.get("Messages", []):
            body = {**json.loads(message["Body"]), "_read": time.monotonic()}
            found.append(body)
            self.sqs.delete_message(QueueUrl=self.output, ReceiptHandle=message["ReceiptHandle"])
        self.bodies += found
        return found

    def log_lines(self, index: int) -> list[dict[str, Any]]:
        lines = self.logs[index].read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            process.wait(60)


def closed_loop(cluster: Cluster, per_workspace: int, agent_seconds: float) -> tuple[float, list[float]]:
    """Each workspace's user sends its next command when the last is answered; (seconds, latencies)."""
    left = {client: per_workspace for client in CLIENTS}
    started = time.monotonic()
    for client in CLIENTS:
        cluster.send(client, f"{client}-{left[client]}", agent_seconds)
    latencies: list[float] = []
    while any(left.values()):
        if time.monotonic() - started > 600:
            raise RuntimeError(f"stuck: {left}")
        for body in cluster.read():
            if body["type"] != "response":
                continue
            if not body["success"]:
                raise RuntimeError(f"a command failed: {body.get('errorCode')} {body.get('error')}")
            latencies.append(body["_read"] - cluster.sent[body["commandId"]])
            client = body["commandId"].split("-")[0]
            left[client] -= 1
            if left[client]:
                cluster.send(client, f"{client}-{left[client]}", agent_seconds)
    return time.monotonic() - started, latencies


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
        stack, logs, 2, leases=True, lease_seconds=lease_seconds, VISIBILITY_TIMEOUT_SECONDS=seconds, MAX_WORKERS="1"
    )
    try:
        time.sleep(2)
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
            if line.get("event") == "workspace lease taken" and line.get("fence", 0) > 1
        )
        return {"leaseTakenSeconds": round(taken, 2), "firstStepSeconds": round(first_step, 2)}
    finally:
        cluster.stop()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-workspace", type=int, default=5, help="commands per workspace per run")
    parser.add_argument("--agent-seconds", type=float, default=2.0)
    parser.add_argument("--lease-seconds", type=float, default=10.0)
    parser.add_argument("--latency-samples", type=int, default=24, help="commands per variant (default %(default)s)")
    parser.add_argument("--counts", default="1,2,3", help="supervisor counts to measure (default %(default)s)")
    parser.add_argument("--logs", type=Path, help="keep the supervisors' logs in this folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures: dict[str, Any] = {"commandsPerRun": args.per_workspace * len(CLIENTS), "leaseSeconds": args.lease_seconds}
    with tempfile.TemporaryDirectory(prefix="containers-bench-") as folder, local_stack(Path(folder)) as stack:
        logs = args.logs or Path(folder) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        installed = installed_site()
        for client in CLIENTS:
            stack.create_bucket(client)
            prewarm_checkout(Path(folder) / "workspace", stack.remote, installed, client, "u1")
        rates: dict[str, float] = {}
        counts = [int(c) for c in args.counts.split(",")]
        # The obvious alternative last: one container with as many workers, no leases (the machine's limit).
        runs = [(f"{n}", n, 1, True) for n in counts] + [(f"1x{max(counts)}", 1, max(counts), False)]
        for name, count, workers, leases in runs:
            lease_seconds, max_workers = args.lease_seconds, str(workers)
            cluster = Cluster(stack, logs, count, leases=leases, lease_seconds=lease_seconds, MAX_WORKERS=max_workers)
            try:
                seconds, _ = closed_loop(cluster, args.per_workspace, args.agent_seconds)
            finally:
                cluster.stop()
            rates[name] = figures["commandsPerRun"] / seconds * 60
            print(f"{count} supervisor(s) × {workers} worker(s): {rates[name]:.1f} commands/min", file=sys.stderr)
        figures["commandsPerMinute"] = {k: round(v, 1) for k, v in rates.items()}
        figures["speedup"] = {k: round(v / rates[str(counts[0])], 2) for k, v in rates.items()}
        # Both at once, on queues of their own, one command at a time in turn: drift hits both alike.
        plain, leased = (
            Cluster(stack, logs, 1, leases=leases, lease_seconds=args.lease_seconds, MAX_WORKERS="1")
            for leases in (False, True)
        )
        try:
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
