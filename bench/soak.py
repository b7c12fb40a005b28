"""Chaos soak: bursts of commands from several clients and users through the real supervisor, while it
is killed -9 and restarted, and workers are killed -9, at random moments.

The stack is local (moto in its own process, a bare git remote, the fake agent writing one file per
command and sleeping a while, the quick build). A third of the commands go to a workspace whose work
is running, so they interrupt it. A few invalid bodies go in too. VISIBILITY_TIMEOUT_SECONDS is short
so what a killed supervisor held comes back quickly.

At the end, printed as counts and a verdict:
- every valid command has exactly one final response (lost messages, double responses);
- every commit named in a response is reachable on the remote from its branch, and the command's file
  is on that branch (lost commits);
- no process of any worker is alive, and no process of a dead supervisor's worker was ever seen in a
  checkout while a live worker worked there (orphans);
- the DLQ holds exactly the invalid bodies; the supervisor never crashed on its own (no traceback);
- the final SIGTERM exits 0 within the grace.

    .venv/bin/python bench/soak.py                       # the bench (README quotes it)
    .venv/bin/python bench/soak.py --commands 20 --supervisor-kills 2 --worker-kills 1 --json   # the suite's
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from helpers import prewarm_checkout  # noqa: E402
from queue_readers import Reader  # noqa: E402

from steps.processes.deps import ensure_dependencies  # noqa: E402
from supervisor.local.stack import DEMO_SITE, LocalStack, job_python, local_stack  # noqa: E402
from supervisor.status import read_status, status_path  # noqa: E402

FAKE_AGENT = ROOT / "tests" / "fake_claude"
QUICK_BUILD = f"node {ROOT / 'tests' / 'quick_build.mjs'}"
INSTALLED = ROOT / ".local" / "soak-installed-site"  # the demo site's node_modules, installed once
CLIENTS = ("acme", "beta", "gamma")
USERS = ("u1", "u2")
GRACE = 30


def installed_site() -> Path:
    """The demo site with its dependencies, installed once on this machine and reused."""
    if not (INSTALLED / "node_modules").is_dir():
        INSTALLED.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["rm", "-rf", str(INSTALLED)], check=True)
        subprocess.run(["cp", "-r", str(DEMO_SITE), str(INSTALLED)], check=True)
        subprocess.run(["rm", "-rf", str(INSTALLED / "node_modules"), str(INSTALLED / "dist")], check=True)
        ensure_dependencies(INSTALLED)
    return INSTALLED


def ours(environ: dict[str, str] | None, workspace: Path) -> bool:
    """A worker of this run's supervisors (other runs, such as a test suite's, may have workers too)."""
    return (environ or {}).get("WORKSPACE_PATH") == str(workspace)


class Supervised:
    """The supervisor process: started, killed -9 and restarted, stopped; every pid it ever had."""

    def __init__(self, stack: LocalStack, env: dict[str, str], logs: Path):
        self.stack, self.env, self.logs = stack, env, logs
        self.pids: list[int] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.unexpected_exits: list[int] = []

    def start(self) -> None:
        self.process = self.stack.start_supervisor(self.env, self.logs / f"supervisor-{len(self.pids)}.log")
        self.pids.append(self.process.pid)

    def kill9(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            self.unexpected_exits.append(self.process.returncode)
        self.process.kill()
        self.process.wait()

    def live_pid(self) -> int | None:
        return self.process.pid if self.process and self.process.poll() is None else None


class CheckoutWatch(threading.Thread):
    """Samples the process table: each process working in a checkout belongs to a live worker (its
    session leader is a worker of the live supervisor) or is an orphan of a dead one. An orphan in a
    checkout where a live worker works at the same moment is a violation."""

    def __init__(self, workspace: Path, supervised: Supervised):
        super().__init__(daemon=True)
        self.workspace, self.supervised = workspace, supervised
        self.stop = threading.Event()
        self.orphans_seen: dict[int, tuple[float, float]] = {}  # pid → (first, last) seen
        self.overlaps: list[dict[str, Any]] = []
        self.samples = 0

    def run(self) -> None:
        while not self.stop.wait(0.2):
            self.sample()

    def sample(self) -> None:
        live = self.supervised.live_pid()
        by_checkout: dict[str, dict[str, list[int]]] = {}
        for proc in psutil.process_iter(["pid", "cwd"]):
            cwd = proc.info.get("cwd") or ""
            if not cwd.startswith(str(self.workspace) + "/") or "/.supervisor" in cwd or "/.agent" in cwd:
                continue
            parts = Path(cwd).relative_to(self.workspace).parts
            if len(parts) < 3:
                continue
            try:
                session = os.getsid(proc.info["pid"])
            except OSError:
                continue  # gone already
            owner = "orphan"  # also when its worker (the session's leader) is gone
            try:
                leader = psutil.Process(session)
                if live is not None and leader.ppid() == live and "steps.worker" in " ".join(leader.cmdline()):
                    owner = "live"
            except psutil.Error:
                pass
            by_checkout.setdefault("/".join(parts[:3]), {"live": [], "orphan": []})[owner].append(proc.info["pid"])
        self.samples += 1
        now = time.monotonic()
        for checkout, owners in by_checkout.items():
            for pid in owners["orphan"]:
                self.orphans_seen[pid] = (self.orphans_seen.get(pid, (now, now))[0], now)
            if owners["live"] and owners["orphan"]:
                self.overlaps.append({"checkout": checkout, **owners})


def running_worker(workspace: Path, supervisor_pid: int | None, rng: random.Random) -> int | None:
    """A worker of the live supervisor running a command now (from its status file), if any."""
    try:
        workers = read_status(status_path(workspace))["workers"]
    except (OSError, ValueError, KeyError):
        return None
    pids = []
    for worker in workers:
        with contextlib.suppress(psutil.Error, TypeError, ValueError):
            if worker["phase"] == "running" and psutil.Process(int(worker["workerPid"])).ppid() == supervisor_pid:
                pids.append(int(worker["workerPid"]))
    return rng.choice(pids) if pids else None


def busy_workspaces(workspace: Path) -> list[tuple[str, str]]:
    try:
        workers = read_status(status_path(workspace))["workers"]
    except (OSError, ValueError, KeyError):
        return []
    return [tuple(w["workspace"].split("/")[:2]) for w in workers if w.get("workspace")]  # type: ignore[misc]


def git(remote: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "--git-dir", str(remote), *args], capture_output=True, text=True)


def run(args: argparse.Namespace, state: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    with local_stack(state) as stack:
        for client in CLIENTS:
            stack.create_bucket(client)
        workspace = state / "workspace"
        installed = args.installed or installed_site()
        for client in CLIENTS:
            for user in USERS:
                prewarm_checkout(workspace, stack.remote, installed, client, user)
        env = stack.supervisor_env(
            AGENT_COMMAND=f"{job_python()} {FAKE_AGENT}",
            BUILD_COMMAND=QUICK_BUILD,
            LOG_FORMAT="json",
            MAX_WORKERS="3",
            VISIBILITY_TIMEOUT_SECONDS=str(args.visibility),
            INTERRUPT_GRACE_SECONDS="2",
            SHUTDOWN_GRACE_SECONDS=str(GRACE),
        )
        supervised = Supervised(stack, env, state)
        outputs, dead_letters = Reader(stack, "output"), Reader(stack, "dlq")
        watch = CheckoutWatch(workspace, supervised)
        for thread in (outputs, dead_letters, watch):
            thread.start()
        supervised.start()

        sent: dict[str, dict[str, Any]] = {}
        invalid_ids: set[str] = set()
        interrupting = 0
        total = args.commands
        # Chaos at random moments of the sending (as fractions of the commands sent).
        supervisor_kills = sorted(rng.uniform(0.1, 0.95) for _ in range(args.supervisor_kills))
        worker_kills = sorted(rng.uniform(0.1, 0.95) for _ in range(args.worker_kills))
        kills = {"supervisor": 0, "worker": 0}
        started = time.monotonic()
        while len(sent) < total:
            for _ in range(min(rng.randint(3, 8), total - len(sent))):
                busy = busy_workspaces(workspace)
                if busy and rng.random() < 0.45:
                    client, user = rng.choice(busy)
                    interrupting += 1
                else:
                    client, user = rng.choice(CLIENTS), rng.choice(USERS)
                command_id = f"soak-{len(sent)}-{uuid.uuid4().hex[:6]}"
                body = {
                    "instruction": f"Soak {command_id}\n@fake write notes/soak/{command_id}.txt {command_id}\n"
                    f"@fake sleep {rng.uniform(0.5, 3):.1f}",
                    "commandId": command_id,
                    "chatThreadId": f"{client}-{user}-{rng.randrange(2)}",
                    "clientId": client,
                    "userId": user,
                }
                stack.sqs.send_message(QueueUrl=stack.queues["input"], MessageBody=json.dumps(body))
                sent[command_id] = body
                if rng.random() < 0.05:  # an invalid body among them
                    reply = stack.sqs.send_message(QueueUrl=stack.queues["input"], MessageBody='{"instruction": 1}')
                    invalid_ids.add(reply["MessageId"])
            done = len(sent) / total
            while supervisor_kills and supervisor_kills[0] <= done:
                supervisor_kills.pop(0)
                time.sleep(rng.uniform(0.2, 1.5))  # somewhere inside the running work
                supervised.kill9()
                kills["supervisor"] += 1
                time.sleep(rng.uniform(0.2, 1.0))
                supervised.start()
            while worker_kills and worker_kills[0] <= done:
                worker_kills.pop(0)
                time.sleep(rng.uniform(0.1, 1.0))
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:  # a worker of the live supervisor, at work
                    if (pid := running_worker(workspace, supervised.live_pid(), rng)) is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                            kills["worker"] += 1
                            break
                    time.sleep(0.1)
            time.sleep(rng.uniform(0.5, 2.5))

        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            answered = {b["commandId"] for b in outputs.bodies if b.get("type") == "response"}
            if set(sent) <= answered and len(set(dead_letters.sources)) >= len(invalid_ids):
                break
            time.sleep(0.5)
        drained = time.monotonic()
        stop_started = time.monotonic()
        assert supervised.process is not None
        if supervised.process.poll() is not None:
            supervised.unexpected_exits.append(supervised.process.returncode)
        supervised.process.send_signal(signal.SIGTERM)
        try:
            exit_code: int | None = supervised.process.wait(GRACE + 10)
        except subprocess.TimeoutExpired:
            exit_code = None
        stop_seconds = time.monotonic() - stop_started
        time.sleep(2)
        for thread in (outputs, dead_letters, watch):
            thread.stop.set()
            thread.join(5)
        watch.sample()  # and one last look now that everything is stopped
        leftovers = [
            f"{p.pid} {' '.join(p.info.get('cmdline') or [])[:120]} (in {p.info.get('cwd')})"
            for p in psutil.process_iter(["cmdline", "cwd", "environ"])
            if ("steps.worker" in " ".join(p.info.get("cmdline") or []) and ours(p.info.get("environ"), workspace))
            or (p.info.get("cwd") or "").startswith(str(workspace) + "/")
        ]
        return verdict_of(
            stack.remote,
            sent,
            invalid_ids,
            outputs,
            dead_letters,
            watch,
            supervised,
            state,
            figures={
                "commands": len(sent),
                "interrupting": interrupting,
                "invalidSent": len(invalid_ids),
                "supervisorKills": kills["supervisor"],
                "workerKills": kills["worker"],
                "seconds": round(drained - started, 1),
                "stopExitCode": exit_code,
                "stopSeconds": round(stop_seconds, 1),
                "aliveAtEnd": leftovers,
            },
        )


def outcome_of(response: dict[str, Any]) -> str:
    if response["success"]:
        return "success"
    return "interrupted" if response.get("interrupted") else str(response.get("errorCode"))


def verdict_of(
    remote: Path,
    sent: dict[str, dict[str, Any]],
    invalid_ids: set[str],
    outputs: Reader,
    dead_letters: Reader,
    watch: CheckoutWatch,
    supervised: Supervised,
    state: Path,
    figures: dict[str, Any],
) -> dict[str, Any]:
    responses = [b for b in outputs.bodies if b.get("type") == "response"]
    counts = Counter(b["commandId"] for b in responses)
    # The same response sent twice (its supervisor killed between SQS taking it and noting that) is
    # a resend; two different final responses for one command are a double.
    sent_as = {json.dumps({k: v for k, v in b.items() if not k.startswith("_")}, sort_keys=True): b for b in responses}
    distinct = Counter(b["commandId"] for b in sent_as.values())
    lost_commits: list[str] = []
    for body in responses:
        branch, command_id = body.get("branch"), body["commandId"]
        on_branch = [body["commit"]] if body.get("commit") else []
        # Every file a response names, and a successful command's own file, is on its branch.
        files = [f for f in body.get("filesChanged") or [] if f.startswith("notes/soak/")]
        files += [f"notes/soak/{command_id}.txt"] if body["success"] else []
        for commit in on_branch:
            if git(remote, "merge-base", "--is-ancestor", commit, f"refs/heads/{branch}").returncode != 0:
                lost_commits.append(f"{command_id}: {commit[:10]} not on {branch}")
        for name in files:
            if git(remote, "cat-file", "-e", f"refs/heads/{branch}:{name}").returncode != 0:
                lost_commits.append(f"{command_id}: {name} is not on {branch}")
    tracebacks = []
    for log in sorted(state.glob("supervisor-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"exception"' in line:
                record = json.loads(line)  # the event and the exception's last line: enough to find it again
                last = (record.get("exception") or "").strip().splitlines()[-1:] or [""]
                tracebacks.append(f"{record.get('event')} ({record.get('step')}): {last[0]}")
    outcomes = Counter(
        "success" if b["success"] else ("interrupted" if b.get("interrupted") else b.get("errorCode"))
        for b in responses
    )
    result = {
        **figures,
        "outcomes": dict(outcomes),
        "commitsNamed": sum(1 for b in responses if b.get("commit")),
        "lostMessages": len(set(sent) - set(counts)),
        "doubleResponses": sum(1 for n in distinct.values() if n > 1),
        "identicalResends": sum(counts.values()) - sum(distinct.values()),
        "lostCommits": len(lost_commits),
        "lostCommitSamples": lost_commits[:5],
        "orphansSeen": len(watch.orphans_seen),
        "orphanLongestSeconds": round(max((b - a for a, b in watch.orphans_seen.values()), default=0), 1),
        "orphansOverlappingLiveWork": len(watch.overlaps),
        "overlapSamples": watch.overlaps[:3],
        "processSamples": watch.samples,
        "orphansAtEnd": len(figures["aliveAtEnd"]),
        "crashes": len(supervised.unexpected_exits) + len(tracebacks),
        "tracebackSamples": tracebacks[:3],
        "deadLettered": len(dead_letters.sources),
        "deadLetteredNotInvalid": len(set(dead_letters.sources) - invalid_ids),
    }
    problems = []
    for key in ("lostMessages", "doubleResponses", "lostCommits", "orphansOverlappingLiveWork", "orphansAtEnd"):
        if result[key]:
            problems.append(f"{key}: {result[key]}")
    if result["crashes"]:
        problems.append(f"crashes: {result['crashes']} {result['tracebackSamples']}")
    if result["deadLetteredNotInvalid"] or len(set(dead_letters.sources)) != len(invalid_ids):
        problems.append(f"DLQ holds {result['deadLettered']} for {len(invalid_ids)} invalid bodies")
    if result["stopExitCode"] != 0 or result["stopSeconds"] > GRACE:
        problems.append(f"final SIGTERM: exit {result['stopExitCode']} after {result['stopSeconds']} s")
    result["problems"] = problems
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=120)
    parser.add_argument("--supervisor-kills", type=int, default=5)
    parser.add_argument("--worker-kills", type=int, default=2)
    parser.add_argument("--visibility", type=int, default=8, help="VISIBILITY_TIMEOUT_SECONDS")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the last answers")
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument("--installed", type=Path, help="the demo site with node_modules installed (else made once)")
    parser.add_argument("--state", type=Path, help="keep the run's folder (logs, workspace, remote) here")
    args = parser.parse_args()
    if args.state:
        result = run(args, args.state.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="soak-") as folder:
            result = run(args, Path(folder))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value}")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
