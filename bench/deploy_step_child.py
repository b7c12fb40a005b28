"""bench_deploy.py's "in the worker" tool: the deploy step as a worker runs it, in a process of its own.

A worker has imported the deploy's code and made its S3 client (steps/deploy.py `prepare`, while the
build runs) before its deploy step starts; this child does the same, prints "ready", waits for a line on
stdin, then runs the step's deploy (the worker's `deploy_build` with its digest cache) and prints the
seconds it took. One child per deploy, as one worker runs one command.

Usage (bench_deploy.py runs it): python bench/deploy_step_child.py CHECKOUT BUCKET
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from steps.bucket import deploy_hash
from steps.bucket.content_types import CachePolicy
from steps.bucket.digests import DigestCache, cache_folder_for
from supervisor.contract.config import load_config


def main() -> int:
    checkout, bucket = Path(sys.argv[1]), sys.argv[2]
    config = load_config(require_input_queue=False)
    client = deploy_hash.make_client(config)
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    digests = DigestCache.load(cache_folder_for(checkout))
    deploy_hash.deploy_build(
        checkout / config.build_dir,
        bucket,
        client,
        CachePolicy.from_config(config),
        within=checkout,
        digests=digests,
    )
    print(f"{time.perf_counter() - started:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
