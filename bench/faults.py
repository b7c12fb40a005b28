"""Faults: the real supervisor and workers with AWS failing under them, the git remote gone, the disk full.

Four scenarios, each on the local stack (moto in its own process) with a fault-injecting proxy
(supervisor/local/fault_proxy.py) between the supervisor, its workers, the `aws` CLI and moto:

- sqs:    SQS calls fail (500), are dropped before they reach moto, or are slow. Every command is still
          answered exactly once, the supervisor keeps consuming (backing off) and never crashes.
- s3:     S3 calls fail, are dropped or are slow during deploys (a build with hashed assets), then two
          outages (70 % and all calls failing). Each deploy completes (success) or fails (DEPLOY_FAILED),
          and after every command every live page's asset exists: the site is never broken. The commit is
          pushed either way.
- remote: the git remote is unreachable. An existing checkout still runs the agent, commits, builds and
          deploys, and answers PUSH_FAILED with the branch kept as a pending push; once the remote is
          back, the next command pushes it (nothing committed lost). A new workspace answers one clear
          INTERNAL error (it cannot clone).
- disk:   WORKSPACE_PATH on a small tmpfs that fills up. The command that hits the full disk fails with
          one clear error, the supervisor carries on, and after space is freed the next command succeeds
          with every earlier commit still on the remote.

    .venv/bin/python bench/faults.py                 # the bench (README quotes it)
    .venv/bin/python bench/faults.py --quick --json  # the suite's short variant (tests/e2e/test_faults.py)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helpers import prewarm_checkout  # noqa: E402
from queue_readers import Reader  # noqa: E402

from supervisor.local.fault_proxy import FaultPlan, FaultProxy  # noqa: E402
from supervisor.local.stack import DEMO_SITE, LocalStack, job_python, local_stack  # noqa: E402

FAKE_AGENT = f"{job_python()} {ROOT / 'tests' / 'fake_claude'}"
QUICK_BUILD = f"node {ROOT / 'tests' / 'quick_build.mjs'}"
HASHED_BUILD = f"node {ROOT / 'tests' / 'hashed_build.mjs'}"
INSTALLED = ROOT / ".local" / "soak-installed-site"
ASSET = re.compile(r'href="/(assets/[0-9a-f]+\.css)"')


class Run:
    """One scenario's supervisor (AWS through the proxy), its output reader, and what it answered."""

    def __init__(self, stack: LocalStack, proxy: FaultProxy, log: Path, **env: str):
        self.stack = stack
        defaults = {
            "AWS_ENDPOINT_URL": proxy.url,
            "AGENT_COMMAND": FAKE_AGENT,
            "BUILD_COMMAND": QUICK_BUILD,
            "LOG_FORMAT": "json",
            "VISIBILITY_TIMEOUT_SECONDS": "20",
            "SHUTDOWN_GRACE_SECONDS": "20",
            "PUSH_RETRY_SECONDS": "2",
        }
        self.env = stack.supervisor_env(**{**defaults, **env})
        self.log = log
        self.outputs = Reader(stack, "output")
        self.outputs.start()
        self.supervisor = stack.start_supervisor(self.env, log)
        self.crashed = False

    def send(self, instruction: str, client: str = "acme", user: str = "u1", thread: str = "t") -> str:
        command_id = f"fault-{uuid.uuid4().hex[:8]}"
        body = {"instruction": instruction, "commandId": command_id, "chatThreadId": thread}
        self.stack.sqs.send_message(
            QueueUrl=self.stack.queues["input"], MessageBody=json.dumps({**body, "clientId": client, "userId": user})
        )
        return command_id

    def response(self, command_id: str, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in self.outputs.bodies:
                if body.get("type") == "response" and body["commandId"] == command_id:
                    return body
            if self.supervisor.poll() is not None:
                self.crashed = True
                raise RuntimeError(f"the supervisor exited ({self.supervisor.returncode})")
            time.sleep(0.2)
        raise TimeoutError(f"no response for {command_id}")

    def finish(self) -> dict[str, Any]:
        """Stop it (SIGTERM) and count: responses per command, tracebacks, the exit."""
        self.crashed = self.crashed or self.supervisor.poll() is not None
        self.supervisor.send_signal(signal.SIGTERM)
        exit_code = self.supervisor.wait(60)
        time.sleep(1.5)
        self.outputs.stop.set()
        self.outputs.join(5)
        answers = Counter(b["commandId"] for b in self.outputs.bodies if b.get("type") == "response")
        tracebacks = [line for line in self.log.read_text(errors="replace").splitlines() if '"exception"' in line]
        return {
            "crashes": int(self.crashed) + len(tracebacks),
            "doubleResponses": sum(1 for n in answers.values() if n > 1),
            "stopExitCode": exit_code,
        }


def outcome(response: dict[str, Any]) -> str:
    return "success" if response["success"] else str(response["errorCode"])


def broken_pages(stack: LocalStack, bucket: str) -> list[str]:
    """Live pages whose asset is missing from the bucket."""
    keys = {o["Key"] for o in stack.s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    broken = []
    for key in sorted(k for k in keys if k.endswith(".html")):
        page = stack.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        broken += [f"{key} → {asset}" for asset in ASSET.findall(page) if asset not in keys]
    return broken


def on_remote(remote: Path, commit: str | None, branch: str) -> bool:
    if not commit:
        return True
    check = ["git", "--git-dir", str(remote), "merge-base", "--is-ancestor", commit, f"refs/heads/{branch}"]
    return subprocess.run(check, capture_output=True).returncode == 0


@contextlib.contextmanager
def faulty(stack: LocalStack, plan: FaultPlan) -> Iterator[FaultProxy]:
    proxy = FaultProxy(stack.endpoint, plan).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def scenario_sqs(stack: LocalStack, state: Path, rounds: int) -> dict[str, Any]:
    plan = FaultPlan(services=frozenset({"sqs"}), error_rate=0.1, drop_rate=0.05, slow_rate=0.05, slow_seconds=1.5)
    with faulty(stack, plan) as proxy:
        run = Run(stack, proxy, state / "sqs.log")
        plan.on.set()
        outcomes: Counter[str] = Counter()
        for n in range(rounds):  # three workspaces at once, each round
            ids = [
                run.send(f"Round {n}\n@fake write notes/{n}.txt {n}", user=user, thread=f"sqs-{user}")
                for user in ("u1", "u2", "u3")
            ]
            for command_id in ids:
                outcomes[outcome(run.response(command_id))] += 1
        plan.on.clear()
        left = int(
            stack.sqs.get_queue_attributes(QueueUrl=stack.queues["input"], AttributeNames=["All"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
        )
        return {
            "commands": sum(outcomes.values()),
            "outcomes": dict(outcomes),
            "faults": proxy.injected(),
            "inputLeft": left,
            **run.finish(),
            "ok": set(outcomes) == {"success"} and left == 0,
        }


def scenario_s3(stack: LocalStack, state: Path, commands: int, outages: list[float]) -> dict[str, Any]:
    bucket = stack.create_bucket("acme")
    plan = FaultPlan(services=frozenset({"s3"}), error_rate=0.25, drop_rate=0.1, slow_rate=0.05, slow_seconds=1)
    with faulty(stack, plan) as proxy:
        run = Run(stack, proxy, state / "s3.log", BUILD_COMMAND=HASHED_BUILD, AWS_MAX_ATTEMPTS="2")
        outcomes: Counter[str] = Counter()
        broken: list[str] = []
        unpushed: list[str] = []
        unexpected: list[str] = []
        # Faults now and then, then two outages: most calls failing (a deploy that fails part way), all.
        rates = [0.25] * commands + outages
        for n, rate in enumerate(rates):
            plan.error_rate = rate
            plan.on.set()
            command_id = run.send(f"Page {n}\n@fake write src/pages/index.astro <h1>Version {n}</h1>", thread="s3")
            response = run.response(command_id)
            plan.on.clear()
            outcomes[outcome(response)] += 1
            if outcome(response) not in ("success", "DEPLOY_FAILED"):  # why, for the report
                unexpected.append(f"{command_id}: {response.get('error')}"[:500])
            broken += broken_pages(stack, bucket)
            if response["success"]:
                live = stack.s3.get_object(Bucket=bucket, Key="index.html")["Body"].read().decode()
                broken += [] if f"Version {n}" in live else [f"command {n} succeeded but its page is not live"]
            if not on_remote(stack.remote, response["commit"], response["branch"]):
                unpushed.append(command_id)
        return {
            "commands": len(rates),
            "outcomes": dict(outcomes),
            "faults": proxy.injected(),
            "brokenPages": broken,
            "lostCommits": len(unpushed),
            **({"unexpected": unexpected} if unexpected else {}),
            **run.finish(),
            "ok": set(outcomes) <= {"success", "DEPLOY_FAILED"}
            and "DEPLOY_FAILED" in outcomes
            and not broken
            and not unpushed,
        }


def scenario_remote(stack: LocalStack, state: Path) -> dict[str, Any]:
    with faulty(stack, FaultPlan()) as proxy:
        run = Run(stack, proxy, state / "remote.log")
        first = run.response(run.send("Before\n@fake write notes/before.txt 1", thread="r"))
        away = stack.remote.with_name("away.git")
        stack.remote.rename(away)  # the remote is gone (unreachable)
        offline = run.response(run.send("Offline\n@fake write notes/offline.txt 2", thread="r"))
        fresh = run.response(run.send("New workspace\n@fake write notes/x.txt 3", user="u9", thread="r"))
        away.rename(stack.remote)  # back
        after = run.response(run.send("After\n@fake write notes/after.txt 4", thread="r"))
        kept = all(on_remote(stack.remote, r["commit"], r["branch"]) for r in (first, offline, after))
        outcomes = {
            "before": outcome(first),
            "offline": outcome(offline),
            "newWorkspace": outcome(fresh),
            "after": outcome(after),
        }
        return {
            "commands": 4,
            "outcomes": outcomes,
            "offlineError": offline["error"],
            "newWorkspaceError": fresh["error"],
            "lostCommits": 0 if kept else 1,
            **run.finish(),
            "ok": outcomes
            == {"before": "success", "offline": "PUSH_FAILED", "newWorkspace": "INTERNAL", "after": "success"}
            and kept
            and bool(offline["commit"]),
        }


def small_remote(state: Path) -> Path:
    """A site with no package.json (nothing to install on a small disk): its pages only."""
    seed = state / "small-seed"
    shutil.copytree(DEMO_SITE / "src", seed / "src")
    env = ["-c", "user.name=Bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(seed)], check=True)
    subprocess.run(["git", *env, "-C", str(seed), "add", "-A"], check=True)
    subprocess.run(["git", *env, "-C", str(seed), "commit", "-qm", "Small site"], check=True)
    remote = state / "remotes" / "small.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(remote)], check=True)
    return remote


def scenario_disk(stack: LocalStack, state: Path) -> dict[str, Any]:
    disk = state / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        return {"skipped": f"could not mount a tmpfs: {mounted.stderr.decode().strip()}", "ok": True}
    try:
        remote = small_remote(state)
        with faulty(stack, FaultPlan()) as proxy:
            run = Run(stack, proxy, state / "disk.log", WORKSPACE_PATH=str(disk / "workspace"), REPO_URL=str(remote))
            first = run.response(run.send("Before\n@fake write notes/before.txt 1", thread="d"))
            filler = disk / "filler"
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k", "count=1000"], capture_output=True)
            full = run.response(run.send("On a full disk\n@fake many-files notes/many 50", thread="d"))
            filler.unlink()
            after = run.response(run.send("After\n@fake write notes/after.txt 3", thread="d"))
            kept = all(on_remote(remote, r["commit"], r["branch"]) for r in (first, after))
            outcomes = {"before": outcome(first), "fullDisk": outcome(full), "after": outcome(after)}
            return {
                "commands": 3,
                "outcomes": outcomes,
                "fullDiskError": (full["error"] or "")[:200],
                "lostCommits": 0 if kept else 1,
                **run.finish(),
                "ok": outcomes["before"] == outcomes["after"] == "success"
                and outcomes["fullDisk"] != "success"
                and kept,
            }
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


SCENARIOS = frozenset({"sqs", "s3", "remote", "disk"})


def run_all(args: argparse.Namespace, state: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with local_stack(state) as stack:
        stack.create_bucket("acme")
        installed = args.installed or INSTALLED
        for user in ("u1", "u2", "u3"):
            prewarm_checkout(state / "workspace", stack.remote, installed, "acme", user)
        sqs_rounds, s3_commands = (1, 2) if args.quick else (6, 10)
        for name, scenario in (
            ("sqs", lambda: scenario_sqs(stack, state, sqs_rounds)),
            ("s3", lambda: scenario_s3(stack, state, s3_commands, [1.0] if args.quick else [0.7, 1.0])),
            ("remote", lambda: scenario_remote(stack, state)),
            ("disk", lambda: scenario_disk(stack, state)),
        ):
            if args.only and name not in args.only:
                continue
            started = time.monotonic()
            try:
                results[name] = scenario()
            except Exception as error:  # a scenario that could not finish is a failed one, with its reason
                results[name] = {"error": f"{type(error).__name__}: {error}", "ok": False}
            results[name]["seconds"] = round(time.monotonic() - started, 1)
    results["problems"] = [
        f"{name}: {r}"
        for name, r in results.items()
        if not r.get("ok")
        or r.get("crashes")
        or r.get("doubleResponses")
        or r.get("lostCommits")
        or r.get("stopExitCode", 0) != 0
    ]
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer commands per scenario (the suite's variant)")
    parser.add_argument("--installed", type=Path, help="the demo site with node_modules installed")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument(
        "--only", type=lambda text: set(text.split(",")), help="these scenarios only, e.g. sqs,s3 (default: all)"
    )
    args = parser.parse_args()
    if args.only and not args.only <= SCENARIOS:
        parser.error(f"--only takes {', '.join(sorted(SCENARIOS))}, got {', '.join(sorted(args.only))}")
    if not args.installed:
        from soak import installed_site

        args.installed = installed_site()
    with tempfile.TemporaryDirectory(prefix="faults-") as folder:
        result = run_all(args, Path(folder))
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:>8}: {json.dumps(value)}")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
