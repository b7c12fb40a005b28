"""Benchmark: the content-hash deploy (`bin/redeploy`, the worker's code) vs `aws s3 sync --delete`.

A generated Astro-like site (1,000 HTML pages, 300 content-hashed assets under _astro/, ~50 MB) is
deployed once by each tool to its own bucket on moto's server; then the site is rebuilt (emptied and every
file written again, as Astro does: new inodes, fresh mtimes) with one page's content changed, and each tool
deploys again, ROUNDS times. Four tools: the hash deploy with its digest cache (the checkout has its
repository beside it, as in a workspace), the same without one (no repository beside the checkout), the
hash deploy as a worker's deploy step runs it, and `aws s3 sync --delete`. At the end every bucket must
hold the same objects (keys and ETags).

How it measures, the same way for every tool:
- Each tool runs as its own process (`bin/redeploy <checkout> --bucket B`, `.venv/bin/aws s3 sync`),
  with the same clean environment (credentials, AWS_ENDPOINT_URL, an empty HOME). Wall time is the
  whole process, interpreter start-up and imports included.
- Except the worker's step (bench/deploy_step_child.py): a worker has imported the deploy's code and made
  its client while the build ran, so the child does that first and is timed from then to the deploy's
  end. That is what a command pays for its deploy with DEPLOY_STRATEGY=hash; with `aws-cli` it pays for
  the whole `aws s3 sync` process, the last tool's figure.
- Requests are counted on the server side: a WSGI middleware wrapped around the moto server's app
  (started in this process, on 127.0.0.1) counts every HTTP request that reaches it, whatever the
  client, retries and HEADs included.
- Objects uploaded = PutObject + CompleteMultipartUpload requests; bytes uploaded = the bodies of
  PutObject/UploadPart requests (X-Amz-Decoded-Content-Length when the body is aws-chunked).
moto keeps objects in memory and closes the connection after each response, so absolute times are
those of a local stand-in, not of S3; the ratio is what the comparison is about.

Run: .venv/bin/python bench/bench_deploy.py [ROUNDS]   (ROUNDS one-page rebuilds, default 3; about a minute)
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
PAGES, ASSETS, SEED = 1000, 300, 20240501
CHANGED_PAGE = 500
REGION = "us-west-2"


class Meter:
    """WSGI middleware: counts the requests reaching the server and the object bytes uploaded."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.objects = self.bytes = 0

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.objects = self.bytes = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, query = environ["REQUEST_METHOD"], parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        is_object = environ.get("PATH_INFO", "/").strip("/").count("/") >= 1  # path style: /bucket/key
        size = int(environ.get("HTTP_X_AMZ_DECODED_CONTENT_LENGTH") or environ.get("CONTENT_LENGTH") or 0)
        with self.lock:
            self.requests[method] += 1
            if method == "PUT" and is_object:
                self.bytes += size
                self.objects += "uploadId" not in query  # a part is not an object
            elif method == "POST" and "uploadId" in query:
                self.objects += 1  # CompleteMultipartUpload
        return self.app(environ, start_response)


@dataclass
class Run:
    scenario: str
    tool: str
    requests: int
    detail: str
    objects: int
    bytes: int
    seconds: float


def generate_site(dist: Path, changed: int | None) -> int:
    """Write the whole build (fresh mtimes, as after `npm run build`); return its size in bytes."""
    shutil.rmtree(dist, ignore_errors=True)
    (dist / "_astro").mkdir(parents=True)
    rng = random.Random(SEED)  # same seed: the same content on every rebuild
    assets: list[str] = []
    kinds = [("css", 8_000, 30_000)] * 20 + [("js", 10_000, 80_000)] * 100 + [("webp", 150_000, 400_000)] * 180
    for index, (ext, low, high) in enumerate(kinds[:ASSETS]):
        body = rng.randbytes(rng.randint(low, high))
        name = f"_astro/asset{index}.{hashlib.md5(body).hexdigest()[:8]}.{ext}"
        (dist / name).write_bytes(body)
        assets.append(name)
    total = sum((dist / name).stat().st_size for name in assets)
    filler = " ".join(["Hand-carved stamps, made to order."] * 50)
    for page in range(PAGES):
        refs = [assets[page % 20], assets[20 + page % 100], assets[120 + page % 180]]
        head = "".join(
            f'<link rel="stylesheet" href="/{r}">' if r.endswith(".css") else f'<script src="/{r}"></script>'
            for r in refs[:2]
        )
        text = f"This page was edited ({page})." if page == changed else filler
        body = f'<h1>Page {page}</h1><img src="/{refs[2]}"><p>{text}</p>'
        html = f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>"
        path = dist / ("index.html" if page == 0 else f"page/{page}/index.html")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html)
        total += path.stat().st_size
    return total


def timed(meter: Meter, scenario: str, tool: str, argv: list[str], env: dict[str, str]) -> Run:
    meter.reset()
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{tool} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    with meter.lock:
        detail = ", ".join(f"{m} {n}" for m, n in sorted(meter.requests.items()))
        return Run(scenario, tool, sum(meter.requests.values()), detail, meter.objects, meter.bytes, seconds)


def timed_in_worker(meter: Meter, scenario: str, tool: str, argv: list[str], env: dict[str, str]) -> Run:
    """The deploy step as a worker runs it (deploy_step_child.py): timed from the go to its end, after the
    child has imported the code and made its client, as a worker has by then."""
    child = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        sys.exit(f"{tool} did not start (exit {child.wait()})")
    meter.reset()
    started = time.perf_counter()
    child.stdin.write("go\n")
    child.stdin.flush()
    reported = child.stdout.readline().strip()
    seconds = time.perf_counter() - started
    if child.wait() != 0 or not reported:
        sys.exit(f"{tool} failed ({child.returncode})")
    with meter.lock:
        detail = ", ".join(f"{m} {n}" for m, n in sorted(meter.requests.items()))
        return Run(scenario, tool, sum(meter.requests.values()), detail, meter.objects, meter.bytes, seconds)


SYNC_OPTIONS = ("--delete", "--no-progress")
HASH, HASH_NO_CACHE, SYNC = "hash (bin/redeploy)", "hash, no digest cache", "aws s3 sync --delete"
IN_WORKER = "hash, worker's step"


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    meter = Meter(server._server.app)  # type: ignore[union-attr]  # werkzeug reads .app per request
    server._server.app = meter  # type: ignore[union-attr]
    endpoint = f"http://{host}:{port}"
    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work / "home"),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_PAGER": "",
    }
    s3 = boto3.client(
        "s3", region_name=REGION, endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench"
    )
    # The worker's layout: the checkout, and beside it the repository (ours) where the digest cache lives.
    checkout = work / "site"
    (work / ".site.git").mkdir(mode=0o700, parents=True)
    bare = work / "no-repository" / "site"  # the same build with no repository beside it: no cache
    in_worker = work / "worker" / "site"  # a checkout (and digest cache) of its own, as the other tools have
    (work / "worker" / ".site.git").mkdir(mode=0o700, parents=True)
    redeploy = [sys.executable, str(ROOT / "bin/redeploy")]
    tools = {
        # The venv's interpreter runs every tool, as the aws script's own shebang does (no shim, no re-exec).
        HASH: ([*redeploy, str(checkout), "--bucket", "bench-hash"], "bench-hash", timed),
        HASH_NO_CACHE: ([*redeploy, str(bare), "--bucket", "bench-nocache"], "bench-nocache", timed),
        IN_WORKER: (
            [sys.executable, str(ROOT / "bench/deploy_step_child.py"), str(in_worker), "bench-worker"],
            "bench-worker",
            timed_in_worker,
        ),
        SYNC: (
            [str(ROOT / ".venv/bin/aws"), "s3", "sync", str(checkout / "dist"), "s3://bench-sync", *SYNC_OPTIONS],
            "bench-sync",
            timed,
        ),
    }
    for _, bucket, _ in tools.values():
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    runs: list[Run] = []
    try:
        size = generate_site(checkout / "dist", changed=None)
        for other in (bare, in_worker):
            generate_site(other / "dist", changed=None)
        os.sync()
        print(f"site: {PAGES} pages + {ASSETS} assets, {size / 1e6:.1f} MB; moto server at {endpoint}", flush=True)
        runs += [run(meter, "first deploy", tool, argv, env) for tool, (argv, _, run) in tools.items()]
        for round_ in range(rounds):  # each rebuild: one page differs from the last, every file written anew
            for site in (checkout, bare, in_worker):
                generate_site(site / "dist", changed=CHANGED_PAGE + round_)
            os.sync()  # the rebuild's writes reach the disk before any tool is timed, not during the first one
            runs += [run(meter, "one-page rebuild", tool, argv, env) for tool, (argv, _, run) in tools.items()]
        same_objects(s3, [bucket for _, bucket, _ in tools.values()])
    finally:
        shutil.rmtree(work, ignore_errors=True)
        server.stop()
    print_table(runs)
    return 0


def same_objects(s3: Any, buckets: list[str]) -> None:
    """Every bucket holds the rebuilt site: the same keys with the same content (ETag: MD5, single part)."""
    held = []
    for bucket in buckets:
        listing = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        held.append({o["Key"]: o["ETag"] for page in listing for o in page.get("Contents", [])})
    assert len(held[0]) == PAGES + ASSETS, len(held[0])
    assert all(h == held[0] for h in held), "the buckets differ"


def print_table(runs: list[Run]) -> None:
    columns = ("scenario", "tool", "requests", "objects up", "bytes up", "wall s", "requests by method")
    print("\n{:<17} {:<22} {:>8} {:>10} {:>11} {:>7}  {}".format(*columns))
    for r in runs:
        row = (r.scenario, r.tool, r.requests, r.objects, f"{r.bytes:,}", f"{r.seconds:.2f}", r.detail)
        print("{:<17} {:<22} {:>8} {:>10} {:>11} {:>7}  {}".format(*row))
    rebuild = {
        tool: [r.seconds for r in runs if r.tool == tool and r.scenario != "first deploy"]
        for tool in (HASH, HASH_NO_CACHE, IN_WORKER, SYNC)
    }
    median = {tool: statistics.median(seconds) for tool, seconds in rebuild.items()}

    def verdict(ratio: float) -> str:
        return f"{ratio:.1f}x ({'meets' if ratio >= 20 else 'MISSES'} the 20x goal)"

    print(
        f"\none-page rebuild, median of {len(rebuild[HASH])}: hash {median[HASH]:.3f} s, without the digest cache "
        f"{median[HASH_NO_CACHE]:.3f} s, the worker's step {median[IN_WORKER]:.3f} s, sync {median[SYNC]:.3f} s\n"
        f"sync / hash (a process of its own, start-up included) = {verdict(median[SYNC] / median[HASH])}\n"
        f"sync / the worker's deploy step (as a command pays for each strategy) = "
        f"{verdict(median[SYNC] / median[IN_WORKER])}\n"
        f"no cache / cache = {median[HASH_NO_CACHE] / median[HASH]:.1f}x; all buckets hold the same objects"
    )


if __name__ == "__main__":
    sys.exit(main())
