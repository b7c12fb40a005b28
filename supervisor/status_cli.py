"""`bin/status` and `bin/healthcheck`: read the supervisor's status file (and the live process table)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from supervisor.sharing.lease_table import LeaseTable
from supervisor.status import HEALTHY_WITHIN_SECONDS, read_status, status_path


def _workspace_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workspace",
        type=Path,
        default=Path(os.environ.get("WORKSPACE_PATH") or "/workspace"),
        help="the supervisor's WORKSPACE_PATH (default: $WORKSPACE_PATH or /workspace)",
    )


def _load(workspace: Path) -> dict[str, Any]:
    path = status_path(workspace)
    if not workspace.is_dir():
        raise SystemExit(f"error: {workspace} is not a folder (pass the supervisor's WORKSPACE_PATH)")
    try:
        return read_status(path)
    except FileNotFoundError:
        raise SystemExit(f"error: no status file at {path}: is a supervisor running with this workspace?") from None
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: cannot read {path}: {error}") from None


def _alive(pid: int) -> bool:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    return False


def _tree_lines(pid: int) -> list[str]:
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return ["    (worker process gone)"]
    lines = []
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            depth = 0
            parent = proc
            while parent.pid != pid and (parent := parent.parent()) is not None and depth < 12:
                depth += 1
            command = " ".join(proc.cmdline())[:100] or proc.name()
            lines.append(f"    {'  ' * depth}{proc.pid:>7} {proc.status():<9} {command}")
    return lines


def status_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="status",
        description="Show what the supervisor is doing: each worker's workspace, command, step, "
        "elapsed time and live process tree, and the commands waiting for a worker.",
    )
    _workspace_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the status file as JSON")
    args = parser.parse_args(argv)
    status = _load(args.workspace)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    age = time.time() - float(status.get("heartbeat", 0))
    state = "running" if _alive(int(status.get("pid", 0))) and age < HEALTHY_WITHIN_SECONDS else "NOT RUNNING"
    stopping = ", stopping" if status.get("stopping") else ""
    print(
        f"supervisor pid {status.get('pid')}: {state}, status {age:.0f}s old{stopping}; "
        f"{status.get('handled', 0)} commands answered"
    )
    workers = status.get("workers", [])
    layers = status.get("containment") or {}
    if layers:
        print("containment: " + "; ".join(f"{name} {state}" for name, state in layers.items()))
    print(f"workers: {len(workers)} of {status.get('maxWorkers')}")
    for worker in workers:
        print(
            f"  {worker['workspace']}  {worker['commandId']}  branch {worker['branch']}  "
            f"{worker['phase']}/{worker.get('step') or '-'}  {worker['elapsedSeconds']:.0f}s"
        )
        if worker.get("workerPid"):
            print("\n".join(_tree_lines(int(worker["workerPid"]))))
    for waiting in status.get("waiting", []):
        print(f"  waiting: {waiting['workspace']}  {waiting['commandId']}")
    if status.get("leaseTable"):
        print(f"leases in {status['leaseTable']} (this container: {status.get('owner')}):")
        print("\n".join(f"  {line}" for line in _lease_lines(status["leaseTable"], status.get("owner"))))
    return 0


def _lease_lines(table: str, me: str | None) -> list[str]:
    """Every container's leases, from DynamoDB (the status file only knows this container)."""
    from supervisor.sharing.cli import describe, dynamodb_client, sqs_client

    try:
        holders = LeaseTable(dynamodb_client(), table, owner="bin/status", inbox="", lease_seconds=60).holders()
    except Exception as error:
        return [f"(cannot read the lease table: {type(error).__name__}: {error})"]
    return describe(holders, sqs_client(), me) or ["(none)"]


def healthcheck_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="healthcheck", description="Exit 0 only while the supervisor's loop is alive (for Docker/ECS)."
    )
    _workspace_argument(parser)
    parser.add_argument("--max-age", type=float, default=HEALTHY_WITHIN_SECONDS, help="seconds (default %(default)s)")
    args = parser.parse_args(argv)
    status = _load(args.workspace)
    age = time.time() - float(status.get("heartbeat", 0))
    pid = int(status.get("pid", 0))
    if not _alive(pid):
        print(f"unhealthy: supervisor pid {pid} is not running", file=sys.stderr)
        return 1
    if age > args.max_age:
        print(f"unhealthy: the supervisor loop last reported {age:.0f}s ago", file=sys.stderr)
        return 1
    print(f"healthy: pid {pid}, loop reported {age:.1f}s ago")
    return 0
