"""What the deploy tests share: building a fake site, looking into a bucket, counting S3 calls."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

from helpers import REGION, ROOT, message

from steps.base import StepContext
from steps.bucket import deploy_hash
from steps.bucket.content_types import CachePolicy
from steps.git.repo import Git
from supervisor.contract.command import parse_command
from supervisor.contract.config import Config

MiB = 1024 * 1024
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, max-age=0, must-revalidate"
POLICY = CachePolicy(immutable=IMMUTABLE, default=REVALIDATE)
ASSET_REF = re.compile(r'(?:href|src)="/(_astro/[^"]+)"')


# ---------------------------------------------------------------- helpers


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def new_bucket(s3: Any) -> str:
    name = f"deploy-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


def context(config: Config, checkout: Path) -> StepContext:
    command = parse_command(json.dumps(message()), "https://git.example.invalid/site.git")
    return StepContext(config=config, command=command, checkout=checkout, git=Git(checkout, config), build_ok=True)


def write_build(build: Path, files: dict[str, bytes]) -> Path:
    """A fresh build: the folder is recreated, so every file has a new mtime (as after `npm run build`)."""
    shutil.rmtree(build, ignore_errors=True)
    for key, body in files.items():
        path = build / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return build


def hashed(stem: str, ext: str, body: bytes) -> tuple[str, bytes]:
    return f"_astro/{stem}.{md5(body)[:8]}.{ext}", body


def site(version: str, pages: list[str], chunks: int = 3) -> dict[str, bytes]:
    """An Astro-like build: hashed assets under _astro/, pages that reference them, a few plain files."""
    assets = dict(
        [
            hashed("site", "css", f"body{{color:{version}}}".encode()),
            hashed("logo", "svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),  # the same in every version
            *(hashed(f"chunk{i}", "js", f"export const v{i}='{version}';".encode()) for i in range(chunks)),
        ]
    )
    refs = "".join(
        f'<link rel="stylesheet" href="/{key}">' if key.endswith(".css") else f'<script src="/{key}"></script>'
        for key in assets
    )
    files = {**assets, "robots.txt": b"User-agent: *\n", "favicon.ico": b"\x00\x00\x01\x00"}
    for page in pages:
        key = f"{page}/index.html" if page else "index.html"
        files[key] = f"<!DOCTYPE html><html><head>{refs}</head><body>{page} {version}</body></html>".encode()
    return files


class Calls:
    """The S3 operations a client made, in order, as (operation, key)."""

    def __init__(self, client: Any):
        self.ops: list[tuple[str, str | None]] = []
        client.meta.events.register("before-parameter-build.s3", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.ops.append((model.name, params.get("Key")))

    def names(self) -> list[str]:
        return [name for name, _ in self.ops]

    def put_keys(self) -> list[str]:
        return [key for name, key in self.ops if name in ("PutObject", "CreateMultipartUpload") and key]


def client_with_calls(config: Config) -> tuple[Any, Calls]:
    client = deploy_hash.make_client(config)
    return client, Calls(client)


def bucket_bodies(s3: Any, bucket: str) -> dict[str, bytes]:
    keys = [
        o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in p.get("Contents", [])
    ]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def snapshot(s3: Any, bucket: str) -> dict[str, tuple[Any, ...]]:
    """Everything a visitor or a later deploy could see of each object."""
    state = {}
    for key, body in bucket_bodies(s3, bucket).items():
        head = s3.head_object(Bucket=bucket, Key=key)
        fields = ("ETag", "LastModified", "ContentType", "CacheControl", "Metadata")
        state[key] = (body, *(head.get(field) for field in fields))
    return state


def broken_references(bodies: dict[str, bytes]) -> list[str]:
    """`/_astro/...` references of HTML objects that point at no object in the bucket."""
    return [
        f"{key} -> {ref}"
        for key, body in bodies.items()
        if key.endswith(".html")
        for ref in ASSET_REF.findall(body.decode())
        if ref not in bodies
    ]


def shell(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """An operator's command line (bin/redeploy, bin/previews) as a shell runs it, from the project root."""
    return subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
