"""Fuzz: thousands of hostile message bodies through the real supervisor (moto's SQS and S3, real workers).

Bodies (tests/hostile_bodies.py): non-JSON, every JSON type in every field, control characters, NUL,
lone surrogates, bodies near the size limit, deep nesting, path traversal, option and protocol
injection, shell metacharacters aimed at a canary file, homoglyph ids, hypothesis-made JSON, and a
small share of valid-but-hostile commands that real workers run (fake agent, quick build).

Checks, printed as a verdict: the supervisor never crashed nor logged a traceback, the canary was never
created, nothing was created outside the workspace layout, every invalid message was dead-lettered,
every valid one answered exactly once, the queue drained, and SIGTERM stopped it with exit 0. Figures:
throughput, the supervisor's RSS, and how long a valid command sent mid-flood waited for its first step.

    .venv/bin/python bench/fuzz.py --count 10000          # the bench (README quotes it)
    .venv/bin/python bench/fuzz.py --count 60 --json      # the suite's short variant (tests/e2e/test_fuzz.py)
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from hostile_bodies import Body, bodies  # noqa: E402
from queue_readers import Reader, moto_cpu_seconds  # noqa: E402

from supervisor.local.stack import LocalStack, job_python, local_stack  # noqa: E402

FAKE_AGENT = ROOT / "tests" / "fake_claude"
QUICK_BUILD = f"node {ROOT / 'tests' / 'quick_build.mjs'}"
LAYOUT_TOP = {".supervisor", ".agent", ".jobs", "acme"}  # .jobs: the job identities' homes


def queue_depth(stack: LocalStack, name: str) -> int:
    attributes = stack.sqs.get_queue_attributes(QueueUrl=stack.queues[name], AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


# What real SQS takes in a body (moto takes more, then fails every receive on a lone surrogate).
SQS_CHARACTERS = re.compile("^[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]+$")
SQS_MAX_BYTES = 256 * 1024  # moto's limit (SQS now takes 1 MiB)


def sqs_takes(text: str) -> bool:
    return bool(SQS_CHARACTERS.match(text)) and len(text.encode("utf-8")) <= SQS_MAX_BYTES


def send_all(stack: LocalStack, items: list[Body], rate: float = 0) -> tuple[list[Body], int]:
    """Send in batches of ten, `rate` bodies a second (0: as fast as moto takes them); returns what SQS
    took and how many it refuses (empty, NUL, too long…)."""
    refused = sum(1 for b in items if not sqs_takes(b.text))
    items = [b for b in items if sqs_takes(b.text)]
    taken: list[Body] = []
    began = time.monotonic()
    for start in range(0, len(items), 10):
        if rate:
            time.sleep(max(0.0, began + start / rate - time.monotonic()))
        batch = items[start : start + 10]
        entries = [{"Id": str(i), "MessageBody": b.text} for i, b in enumerate(batch)]
        try:
            reply = stack.sqs.send_message_batch(QueueUrl=stack.queues["input"], Entries=entries)
        except Exception:  # a body boto3 cannot even encode takes the batch down: send one by one
            reply = {"Successful": [], "Failed": []}
            for entry in entries:
                try:
                    stack.sqs.send_message(QueueUrl=stack.queues["input"], MessageBody=entry["MessageBody"])
                    reply["Successful"].append(entry)
                except Exception:
                    reply["Failed"].append(entry)
        ok = {int(entry["Id"]) for entry in reply.get("Successful", [])}
        taken += [b for i, b in enumerate(batch) if i in ok]
        refused += len(batch) - len(ok)
    return taken, refused


def outside_layout(workspace: Path) -> list[str]:
    """Anything under WORKSPACE_PATH that is not {.supervisor, .agent, acme/u1|u2/<repo>} (and their insides)."""
    strays = [p.name for p in workspace.iterdir() if p.name not in LAYOUT_TOP]
    acme = workspace / "acme"
    if acme.is_dir():
        strays += [f"acme/{p.name}" for p in acme.iterdir() if p.name not in ("u1", "u2")]  # u2: the probe
        strays += [f"acme/u1/{p.name}" for p in (acme / "u1").iterdir() if not p.name.startswith(("demo-site", "."))]
    return strays


def run(
    count: int, seed: int, valid_share: float, state: Path, rate: float = 0, keep_log: Path | None = None
) -> dict[str, Any]:
    canary = state / "CANARY"
    with local_stack(state) as stack:
        stack.create_bucket("acme")
        env = stack.supervisor_env(
            AGENT_COMMAND=f"{job_python()} {FAKE_AGENT}",
            BUILD_COMMAND=QUICK_BUILD,
            LOG_FORMAT="json",
            PROGRESS_EVENTS="true",
            VISIBILITY_TIMEOUT_SECONDS="30",
            SHUTDOWN_GRACE_SECONDS="10",
        )
        log_path = state / "supervisor.log"
        supervisor = stack.start_supervisor(env, log_path)
        process = psutil.Process(supervisor.pid)
        outputs, dead_letters = Reader(stack, "output"), Reader(stack, "dlq")
        outputs.start()
        dead_letters.start()
        items = list(bodies(count, seed=seed, canary=canary, repo_url=str(stack.remote), valid_share=valid_share))
        probe_id = f"probe-{uuid.uuid4().hex[:6]}"
        probe = {
            "instruction": "A probe in the flood\n@fake no-change",
            "commandId": probe_id,
            "chatThreadId": "probe",
            "clientId": "acme",
            "userId": "u2",
        }
        started = time.monotonic()
        first, refused_a = send_all(stack, items[: len(items) // 2], rate)
        probe_sent = time.monotonic()
        stack.sqs.send_message(QueueUrl=stack.queues["input"], MessageBody=json.dumps(probe))
        second, refused_b = send_all(stack, items[len(items) // 2 :], rate)
        sent_seconds = time.monotonic() - started
        taken = first + second
        valid_ids = {b.command_id for b in taken if b.valid} | {probe_id}
        invalid_sent = sum(1 for b in taken if not b.valid)
        peak_rss, deadline, flood_done = 0, time.monotonic() + max(300, count / 5), None
        while time.monotonic() < deadline and supervisor.poll() is None:
            peak_rss = max(peak_rss, process.memory_info().rss)
            if flood_done is None and len(dead_letters.sources) >= invalid_sent:
                flood_done = time.monotonic()  # every invalid body taken off the queue and dead-lettered
            answered = {b["commandId"] for b in outputs.bodies if b.get("type") == "response"}
            if valid_ids <= answered and queue_depth(stack, "input") == 0:
                break
            time.sleep(0.2)
        drained = time.monotonic()
        flood_done = flood_done or drained
        alive = supervisor.poll() is None
        stop_started = time.monotonic()
        supervisor.send_signal(signal.SIGTERM)
        supervisor_cpu = sum(process.cpu_times()[:2])
        exit_code = supervisor.wait(60)
        stop_seconds = time.monotonic() - stop_started
        time.sleep(2)
        for reader in (outputs, dead_letters):
            reader.stop.set()
            reader.join(5)
        responses = Counter(b["commandId"] for b in outputs.bodies if b.get("type") == "response" and b["commandId"])
        first_step = next(
            (b["_read"] for b in outputs.bodies if b.get("commandId") == probe_id and b.get("type") == "progress"), None
        )
        if keep_log is not None:
            keep_log.write_bytes(log_path.read_bytes())
        log_lines = [
            json.loads(line) for line in log_path.read_text(errors="replace").splitlines() if line.startswith("{")
        ]
        tracebacks = [line for line in log_lines if "exception" in line]
        return {
            "bodies": count,
            "sent": len(taken) + 1,
            "refusedBySqs": refused_a + refused_b,
            "invalid": invalid_sent,
            "valid": len(valid_ids),
            "sendRatePerSecond": rate or "as fast as moto takes them",
            "sendSeconds": round(sent_seconds, 1),
            "floodSeconds": round(flood_done - started, 1),
            "throughputPerSecond": round((len(taken) + 1) / max(flood_done - started, 0.001), 1),
            "allAnsweredSeconds": round(drained - started, 1),
            "supervisorPeakRssMiB": round(peak_rss / 2**20, 1),
            "supervisorCpuMsPerMessage": round(supervisor_cpu * 1000 / (len(taken) + 1), 2),
            "motoCpuSeconds": round(moto_cpu_seconds(), 1),
            "probeFirstStepSeconds": round(first_step - probe_sent, 2) if first_step else None,
            "crashed": not alive,
            "tracebacks": len(tracebacks),
            "tracebackSamples": [traceback_sample(t) for t in tracebacks[:3]],
            "firstTraceback": tracebacks[0].get("exception") if tracebacks else None,
            "canaryCreated": canary.exists() or any(ROOT.glob("CANARY*")),
            "outsideLayout": outside_layout(state / "workspace"),
            "deadLettered": len(set(dead_letters.sources)),
            "deadLetteredTwice": len(dead_letters.sources) - len(set(dead_letters.sources)),
            "validUnanswered": sorted(valid_ids - set(responses))[:10],
            "answeredTwice": sorted(c for c, n in responses.items() if n > 1 and c in valid_ids)[:10],
            "inputLeft": queue_depth(stack, "input"),
            "stopExitCode": exit_code,
            "stopSeconds": round(stop_seconds, 1),
        }


def traceback_sample(line: dict[str, Any]) -> str:
    """The event, where it happened and the exception's last line: enough to tell one crash from another."""
    where = "/".join(str(line[key]) for key in ("commandId", "step") if line.get(key))
    last = str(line.get("exception", "")).strip().splitlines()[-1:]
    return f"{line.get('event')} ({where}): {last[0] if last else ''}"


def verdict(result: dict[str, Any]) -> list[str]:
    """What went wrong; empty when the run is clean."""
    problems = []
    if result["crashed"] or result["stopExitCode"] != 0:
        problems.append(f"supervisor crashed or stopped badly (exit {result['stopExitCode']})")
    for key in ("tracebacks",):
        if result[key]:
            problems.append(f"{result[key]} tracebacks: {result['tracebackSamples']}")
    if result["canaryCreated"]:
        problems.append("the canary was created")
    if result["outsideLayout"]:
        problems.append(f"created outside the workspace layout: {result['outsideLayout']}")
    if result["deadLettered"] != result["invalid"]:
        problems.append(f"{result['invalid']} invalid sent but {result['deadLettered']} dead-lettered")
    if result["deadLetteredTwice"]:
        problems.append(f"{result['deadLetteredTwice']} messages dead-lettered twice")
    if result["validUnanswered"] or result["answeredTwice"]:
        problems.append(f"unanswered {result['validUnanswered']}, answered twice {result['answeredTwice']}")
    if result["inputLeft"]:
        problems.append(f"{result['inputLeft']} messages left in the input queue")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--valid-share", type=float, default=0.01)
    parser.add_argument("--rate", type=float, default=0, help="bodies sent a second (0: as fast as possible)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.add_argument("--keep-log", type=Path, help="copy the supervisor's log (JSON lines) to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fuzz-") as folder:
        result = run(args.count, args.seed, args.valid_share, Path(folder), args.rate, args.keep_log)
    result["problems"] = verdict(result)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
