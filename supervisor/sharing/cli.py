"""`bin/lease-table`: make or list the workspace lease table (LEASE_TABLE) on DynamoDB.

Honours AWS_ENDPOINT_URL (moto for local runs and tests) and AWS_REGION. `create` is idempotent.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import boto3

from supervisor.sharing.lease_table import Holder, LeaseTable, create_table
from supervisor.sharing.roster import Member, Roster


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/lease-table", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("create", "list"))
    parser.add_argument("--table", default=os.environ.get("LEASE_TABLE"), help="default: $LEASE_TABLE")
    args = parser.parse_args(argv)
    if not args.table:
        parser.error("no table name: pass --table or set LEASE_TABLE")
    client = dynamodb_client()
    try:
        if args.action == "create":
            made = create_table(client, args.table)
            print(f"{args.table}: {'created' if made else 'exists already'}")
            return 0
        holders = LeaseTable(client, args.table, owner="bin/lease-table", inbox="", lease_seconds=60).holders()
        members = Roster(client, args.table, owner="bin/lease-table", lease_seconds=60).members()
    except client.exceptions.ResourceNotFoundException:
        print(f"error: no table {args.table} (bin/lease-table create)", file=sys.stderr)
        return 2
    except Exception as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    sqs = sqs_client()
    print("\n".join(describe(holders, sqs) or ["(no leases)"]))
    print("\n".join(describe_roster(members, sqs) or ["(no containers on the roster)"]))
    return 0


def _client(service: str) -> Any:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return boto3.client(service, region_name=region, endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def dynamodb_client() -> Any:
    return _client("dynamodb")


def sqs_client() -> Any:
    return _client("sqs")


def describe(holders: list[Holder], sqs: Any, me: str | None = None) -> list[str]:
    """One line a lease: workspace, owner (ours marked), fence, age of the last renewal, inbox depth."""
    lines = []
    for h in sorted(holders, key=lambda h: h.workspace):
        age = f"{time.time() - h.renewed_at:.0f}s ago" if h.renewed_at else "never"
        owner = (h.owner or "(released)") + (" (this container)" if me and h.owner == me else "")
        lines.append(f"{h.workspace}  owner={owner}  fence={h.fence}  renewed {age}  inbox={_depth(sqs, h.inbox)}")
    return lines


def describe_roster(members: list[Member], sqs: Any) -> list[str]:
    """One line a container on the roster: owner, beat (gone: left with its inbox not empty), inbox depth."""
    return [
        f"container {m.owner}  beat={m.beat}{'  (gone)' if m.gone else ''}  inbox={_depth(sqs, m.inbox)}"
        for m in sorted(members, key=lambda m: m.owner)
    ]


def _depth(sqs: Any, inbox: str | None) -> str:
    if not inbox:
        return "-"
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["All"])["Attributes"]
    except Exception:
        return "gone"
    waiting = int(attributes["ApproximateNumberOfMessages"])
    in_flight = int(attributes["ApproximateNumberOfMessagesNotVisible"])
    return f"{waiting} waiting, {in_flight} in flight"


if __name__ == "__main__":
    sys.exit(main())
