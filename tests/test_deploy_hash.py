"""The content-hash deploy (DEPLOY_STRATEGY=hash) against moto's server, its pure planner, and bin/redeploy."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import message
from hypothesis import given
from hypothesis import strategies as st

from steps import deploy
from steps.base import StepContext, StepError
from steps.bucket import deploy_hash
from steps.bucket.content_types import CONTENT_TYPES, CachePolicy, content_type
from steps.bucket.plan import LocalFile, RemoteObject, keys_needing_stored_md5, make_plan
from steps.git.repo import Git
from supervisor.contract.command import parse_command
from supervisor.contract.config import Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-west-2"
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


@pytest.fixture
def bucket(s3: Any) -> str:
    return new_bucket(s3)


@pytest.fixture
def config(aws_env: dict[str, str], tmp_path: Path) -> Config:
    return load_config({**aws_env, "WORKSPACE_PATH": str(tmp_path / "workspace")}, require_input_queue=False)


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


# ---------------------------------------------------------------- the pure planner


def local(key: str, body: bytes) -> LocalFile:
    return LocalFile(key, Path("/build", key), len(body), md5(body))


def test_plan_compares_md5_with_single_part_etags_and_sorts_assets_before_pages():
    built = {k: local(k, b) for k, b in {"index.html": b"new", "_astro/a.css": b"a", "robots.txt": b"r"}.items()}
    remote = {
        "index.html": RemoteObject("index.html", md5(b"old"), 3),  # same size, other content
        "_astro/a.css": RemoteObject("_astro/a.css", md5(b"a").upper(), 1),  # case does not matter
        "old/index.html": RemoteObject("old/index.html", md5(b"x"), 1),
    }
    plan = make_plan(built, remote)
    assert [(a.key, a.reason) for a in plan.assets] == [("robots.txt", "new")]
    assert [(a.key, a.reason) for a in plan.pages] == [("index.html", "content changed (md5 differs from ETag)")]
    assert [a.key for a in plan.skips] == ["_astro/a.css"]
    assert [(a.key, a.verb) for a in plan.deletes] == [("old/index.html", "delete")]
    assert plan.bytes_to_send == 4
    assert [a.key for a in plan.actions()] == ["robots.txt", "index.html", "_astro/a.css", "old/index.html"]


def test_plan_uses_the_stored_md5_for_multipart_objects():
    built = {k: local(k, b"x" * 10) for k in ("same", "changed", "unknown", "resized")}
    remote = {
        "same": RemoteObject("same", "abc-2", 10, stored_md5=md5(b"x" * 10)),
        "changed": RemoteObject("changed", "abc-2", 10, stored_md5=md5(b"y" * 10)),
        "unknown": RemoteObject("unknown", "abc-2", 10),  # uploaded by someone else (aws s3 sync)
        "resized": RemoteObject("resized", "abc-2", 99),
    }
    reasons = {a.key: (a.verb, a.reason) for a in make_plan(built, remote).actions()}
    assert reasons == {
        "same": ("skip", "unchanged (md5 matches stored md5)"),
        "changed": ("upload", "content changed (md5 differs from stored md5)"),
        "unknown": ("upload", "multipart object without a stored md5"),
        "resized": ("upload", "size changed (99 -> 10 bytes)"),
    }


def test_only_same_size_multipart_objects_need_a_head_request():
    built = {k: local(k, b"x" * 10) for k in ("multi", "single", "resized")}
    remote = {
        "multi": RemoteObject("multi", "abc-3", 10),
        "single": RemoteObject("single", md5(b"q"), 10),
        "resized": RemoteObject("resized", "abc-3", 11),
        "stale": RemoteObject("stale", "abc-3", 10),
    }
    assert keys_needing_stored_md5(built, remote) == ["multi"]


def test_force_uploads_everything_and_still_deletes_stale_objects():
    built = {"a.css": local("a.css", b"a")}
    remote = {"a.css": RemoteObject("a.css", md5(b"a"), 1), "gone.txt": RemoteObject("gone.txt", md5(b"g"), 1)}
    plan = make_plan(built, remote, force=True)
    assert [(a.key, a.reason) for a in plan.uploads] == [("a.css", "forced")]
    assert [a.key for a in plan.deletes] == ["gone.txt"]


bodies = st.binary(max_size=3)


@given(
    st.dictionaries(st.sampled_from([f"p{i}.html" for i in range(4)] + [f"a{i}.css" for i in range(4)]), bodies),
    st.dictionaries(st.sampled_from([f"p{i}.html" for i in range(6)] + [f"a{i}.css" for i in range(6)]), bodies),
)
def test_plan_properties(built_bodies: dict[str, bytes], remote_bodies: dict[str, bytes]):
    built = {k: local(k, b) for k, b in built_bodies.items()}
    remote = {k: RemoteObject(k, md5(b), len(b)) for k, b in remote_bodies.items()}
    plan = make_plan(built, remote)
    uploads, skips = {a.key for a in plan.uploads}, {a.key for a in plan.skips}
    assert uploads | skips == set(built) and not uploads & skips
    assert skips == {k for k in built if remote_bodies.get(k) == built_bodies[k]}
    assert {a.key for a in plan.deletes} == set(remote) - set(built)
    assert all(a.key.endswith(".html") for a in plan.pages)
    assert not any(a.key.endswith(".html") for a in plan.assets)


# ---------------------------------------------------------------- content types and cache policy

EXPECTED_TYPES = {
    "html": "text/html",
    "css": "text/css",
    "js": "text/javascript",
    "mjs": "text/javascript",
    "json": "application/json",
    "svg": "image/svg+xml",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "avif": "image/avif",
    "gif": "image/gif",
    "ico": "image/x-icon",
    "woff": "font/woff",
    "woff2": "font/woff2",
    "xml": "application/xml",
    "txt": "text/plain",
    "webmanifest": "application/manifest+json",
    "map": "application/json",
    "pdf": "application/pdf",
}


def test_content_type_table_and_fallback():
    assert set(EXPECTED_TYPES) <= set(CONTENT_TYPES)
    assert content_type("_astro/FONT.WOFF2") == "font/woff2"
    assert content_type("no-extension") == "application/octet-stream"
    assert content_type("dir.v2/README") == "application/octet-stream"


def test_cache_policy_comes_from_the_config_and_rejects_header_injection():
    policy = CachePolicy.from_config(
        load_config({"DEPLOY_CACHE_CONTROL_DEFAULT": " no-cache "}, require_input_queue=False)
    )
    assert (policy.for_key("index.html"), policy.for_key("_astro/a.js")) == ("no-cache", IMMUTABLE)
    with pytest.raises(ConfigError, match="DEPLOY_CACHE_CONTROL_IMMUTABLE"):
        load_config({"DEPLOY_CACHE_CONTROL_IMMUTABLE": "max-age=1\r\nX-Evil: 1"}, require_input_queue=False)


def test_every_listed_type_gets_its_content_type_and_cache_control(config, s3, bucket, tmp_path):
    files = {f"_astro/file.{ext}": ext.encode() for ext in EXPECTED_TYPES}
    files.update({f"public/file.{ext}": ext.encode() for ext in EXPECTED_TYPES})
    deploy_hash.deploy_build(write_build(tmp_path / "dist", files), bucket, deploy_hash.make_client(config), POLICY)
    for key in files:
        head = s3.head_object(Bucket=bucket, Key=key)
        expected = EXPECTED_TYPES[key.rsplit(".", 1)[1]]
        assert head["ContentType"].split(";")[0] == expected, key
        assert head["CacheControl"] == (IMMUTABLE if key.startswith("_astro/") else REVALIDATE), key
        assert head["Metadata"] == {"md5": md5(files[key])}, key


def test_cache_control_is_configurable(config, s3, bucket, tmp_path):
    build = write_build(tmp_path / "dist", {"index.html": b"<p>", "_astro/a.js": b"1"})
    policy = CachePolicy(immutable="max-age=60", default="no-store")
    deploy_hash.deploy_build(build, bucket, deploy_hash.make_client(config), policy)
    assert s3.head_object(Bucket=bucket, Key="_astro/a.js")["CacheControl"] == "max-age=60"
    assert s3.head_object(Bucket=bucket, Key="index.html")["CacheControl"] == "no-store"


# ---------------------------------------------------------------- deploys against moto


@pytest.fixture
def config_for_bucket(aws_env: dict[str, str], tmp_path: Path, bucket: str) -> Config:
    """deploy.run names the bucket from S3_BUCKET; point the template at this test's bucket."""
    env = {**aws_env, "WORKSPACE_PATH": str(tmp_path / "workspace"), "S3_BUCKET": bucket}
    return load_config(env, require_input_queue=False)


def test_second_deploy_of_an_unchanged_build_uploads_nothing(config_for_bucket, s3, bucket, tmp_path):
    files = site("v1", ["", "about", "blog/one", "blog/café au lait+more"])  # keys the listing must decode
    checkout = write_build(tmp_path / "site" / "dist", files).parent
    first = deploy.run(context(config_for_bucket, checkout))
    assert first.status == "ok", first
    assert first.details == {
        "bucket": bucket,
        "strategy": "hash",
        "uploaded": len(files),
        "skipped": 0,
        "deleted": 0,
        "bytesSent": sum(map(len, files.values())),
    }
    write_build(checkout / "dist", files)  # rebuilt: same content, fresh mtimes
    client, calls = client_with_calls(config_for_bucket)
    report = deploy_hash.deploy_build(checkout / "dist", bucket, client, POLICY)
    assert (report.uploaded, report.skipped, report.deleted, report.bytes_sent) == (0, len(files), 0, 0)
    assert calls.names() == ["ListObjectsV2"]
    assert bucket_bodies(s3, bucket) == files


def test_deploy_step_reports_counts_and_logs_one_line(config_for_bucket, s3, bucket, tmp_path, caplog):
    files = site("v1", ["", "about"])
    checkout = write_build(tmp_path / "site" / "dist", files).parent
    caplog.set_level("INFO", logger="steps.deploy")
    result = deploy.run(context(config_for_bucket, checkout))
    assert result.status == "ok", result
    assert result.details["bucket"] == bucket
    assert result.details["uploaded"] == len(files)
    lines = [r for r in caplog.records if r.name == "steps.deploy"]
    assert len(lines) == 1
    assert (lines[0].uploaded, lines[0].skipped, lines[0].deleted) == (len(files), 0, 0)
    assert lines[0].bytesSent == sum(map(len, files.values()))


def test_a_one_page_change_uploads_only_that_page(config, s3, bucket, tmp_path):
    files = site("v1", ["", "about", "blog/one"])
    deploy_hash.deploy_build(write_build(tmp_path / "dist", files), bucket, deploy_hash.make_client(config), POLICY)
    files["about/index.html"] = files["about/index.html"].replace(b"about v1", b"about us, rewritten")
    client, calls = client_with_calls(config)
    report = deploy_hash.deploy_build(write_build(tmp_path / "dist", files), bucket, client, POLICY)
    assert (report.uploaded, report.skipped, report.deleted) == (1, len(files) - 1, 0)
    assert report.bytes_sent == len(files["about/index.html"])
    assert calls.put_keys() == ["about/index.html"]
    assert bucket_bodies(s3, bucket) == files


def test_a_removed_page_is_deleted_after_the_uploads(config, s3, bucket, tmp_path):
    deploy_hash.deploy_build(
        write_build(tmp_path / "dist", site("v1", ["", "about", "blog/one"])),
        bucket,
        deploy_hash.make_client(config),
        POLICY,
    )
    files = site("v2", ["", "about"])  # blog/one removed, css and chunks renamed
    client, calls = client_with_calls(config)
    report = deploy_hash.deploy_build(write_build(tmp_path / "dist", files), bucket, client, POLICY)
    assert bucket_bodies(s3, bucket) == files
    stale = {"blog/one/index.html", *(k for k in site("v1", []) if k not in files)}
    assert report.deleted == len(stale) == 1 + 4  # the page, the v1 css and three v1 chunks
    puts = calls.put_keys()
    first_page = min(i for i, key in enumerate(puts) if key.endswith(".html"))
    assert all(not key.endswith(".html") for key in puts[:first_page])
    assert all(key.endswith(".html") for key in puts[first_page:])
    assert calls.names()[-1] == "DeleteObjects"
    assert "PutObject" not in calls.names()[calls.names().index("DeleteObjects") :]


@pytest.mark.parametrize("build_state", ["missing", "empty"])
def test_failed_build_leaves_the_bucket_byte_for_byte_unchanged(config, s3, bucket, tmp_path, build_state):
    checkout = tmp_path / "site"
    deploy_hash.deploy_build(
        write_build(checkout / "dist", site("v1", ["", "about"])), bucket, deploy_hash.make_client(config), POLICY
    )
    before = snapshot(s3, bucket)
    shutil.rmtree(checkout / "dist")
    if build_state == "empty":
        (checkout / "dist" / "sub").mkdir(parents=True)  # folders but no file
    with pytest.raises(StepError) as failure:
        deploy_hash.deploy(context(config, checkout), bucket)
    assert failure.value.error_code == "DEPLOY_FAILED"
    assert "nothing deployed" in str(failure.value)
    # The step itself never even tries when the build step did not succeed.
    ctx = context(config, checkout)
    ctx.build_ok = False
    assert deploy.run(ctx).status == "skipped"
    assert snapshot(s3, bucket) == before


def test_s3_errors_become_one_line_deploy_failed(config, tmp_path):
    build = write_build(tmp_path / "dist", {"index.html": b"<p>"})
    with pytest.raises(StepError) as failure:
        deploy_hash.deploy_build(build, f"missing-{uuid.uuid4().hex[:8]}", deploy_hash.make_client(config), POLICY)
    assert failure.value.error_code == "DEPLOY_FAILED"
    assert "NoSuchBucket" in str(failure.value) and "\n" not in str(failure.value)


def test_a_link_out_of_the_build_is_not_published(config, s3, bucket, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host file")
    build = write_build(tmp_path / "dist", {"index.html": b"<p>"})
    (build / "leak.txt").symlink_to(secret)
    deploy_hash.deploy_build(build, bucket, deploy_hash.make_client(config), POLICY)
    assert set(bucket_bodies(s3, bucket)) == {"index.html"}


def test_an_unchanged_multipart_file_is_not_uploaded_again(config, s3, bucket, tmp_path, monkeypatch):
    monkeypatch.setattr(deploy_hash, "MULTIPART_THRESHOLD", 5 * MiB)  # S3's smallest part size
    monkeypatch.setattr(deploy_hash, "MULTIPART_CHUNKSIZE", 5 * MiB)
    big = os.urandom(6 * MiB)
    files = {"media/video.webp": big, "index.html": b"<p>"}
    deploy_hash.deploy_build(write_build(tmp_path / "dist", files), bucket, deploy_hash.make_client(config), POLICY)
    head = s3.head_object(Bucket=bucket, Key="media/video.webp")
    assert head["ETag"].strip('"').endswith("-2")  # really multipart: the ETag is not the MD5
    assert head["Metadata"] == {"md5": md5(big)}

    client, calls = client_with_calls(config)
    report = deploy_hash.deploy_build(write_build(tmp_path / "dist", files), bucket, client, POLICY)
    assert (report.uploaded, report.skipped, report.bytes_sent) == (0, 2, 0)
    assert calls.ops == [("ListObjectsV2", None), ("HeadObject", "media/video.webp")]

    files["media/video.webp"] = bytes(reversed(big))  # same size, other content
    report = deploy_hash.deploy_build(
        write_build(tmp_path / "dist", files), bucket, deploy_hash.make_client(config), POLICY
    )
    assert (report.uploaded, report.bytes_sent) == (1, 6 * MiB)
    assert bucket_bodies(s3, bucket) == files


# ---------------------------------------------------------------- interrupt (a real process, a real SIGINT)

# Runs the deploy in its own process. Test-only slowdown: each PutObject waits before it is sent, and
# two upload threads, so the SIGINT surely lands while uploads remain.
INTERRUPTIBLE_DEPLOY = """
import sys, time
from pathlib import Path
from steps.bucket import deploy_hash
from steps.bucket.content_types import CachePolicy
from supervisor.contract.config import load_config

deploy_hash.UPLOAD_CONCURRENCY = 2
config = load_config(require_input_queue=False)
POLICY = CachePolicy.from_config(config)
client = deploy_hash.make_client(config)
client.meta.events.register("before-send.s3.PutObject", lambda **_: time.sleep(0.3))
try:
    report = deploy_hash.deploy_build(Path(sys.argv[1]), sys.argv[2], client, POLICY)
except KeyboardInterrupt:
    print("KeyboardInterrupt re-raised", flush=True)
    sys.exit(130)
print("completed", report.uploaded, flush=True)
"""


def changed_keys(s3: Any, bucket: str, before: dict[str, str]) -> set[str]:
    listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"] for o in listing if before.get(o["Key"]) != o["ETag"]}


@pytest.mark.parametrize("interrupt_after", ["first asset", "first page"])
def test_an_interrupted_deploy_deletes_nothing_and_never_breaks_a_page(
    config, s3, bucket, tmp_path, aws_env, interrupt_after
):
    old = site("v1", ["", "about", *(f"blog/{i}" for i in range(12))], chunks=8)
    deploy_hash.deploy_build(write_build(tmp_path / "dist", old), bucket, deploy_hash.make_client(config), POLICY)
    new = site("v2", ["", "about", *(f"blog/{i}" for i in range(10))], chunks=8)
    build = write_build(tmp_path / "dist", new)
    before = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    wanted = (lambda key: key.endswith(".html")) if interrupt_after == "first page" else (lambda key: True)

    env = {**os.environ, **aws_env, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTIBLE_DEPLOY, str(build), bucket],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(wanted(k) for k in changed_keys(s3, bucket, before)):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no upload landed"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "KeyboardInterrupt re-raised" in out
    assert "nothing deleted" in err

    bodies = bucket_bodies(s3, bucket)
    assert set(old) <= set(bodies), "an interrupted deploy deleted something"
    assert set(new) - set(bodies) or any(bodies[k] != new[k] for k in new), "the deploy was not interrupted midway"
    assert broken_references(bodies) == []

    unfinished = {key for key in new if bodies.get(key) != new[key]}
    client, calls = client_with_calls(config)
    report = deploy_hash.deploy_build(build, bucket, client, POLICY)  # running it again completes the deploy
    assert bucket_bodies(s3, bucket) == new
    assert sorted(calls.put_keys()) == sorted(unfinished)  # only what the interrupted run had not done
    assert report.uploaded == len(unfinished)
    assert report.deleted == len(set(old) - set(new))


# ---------------------------------------------------------------- a real Astro build


@pytest.mark.e2e
def test_real_astro_rebuild_uploads_exactly_what_the_build_changed(installed_site, config, s3, bucket, tmp_path):
    checkout = tmp_path / "site"
    shutil.copytree(installed_site, checkout, ignore=shutil.ignore_patterns("node_modules", "dist", ".astro"))
    subprocess.run(["cp", "-al", str(installed_site / "node_modules"), str(checkout / "node_modules")], check=True)

    def build() -> dict[str, str]:
        subprocess.run(["npm", "run", "build"], cwd=checkout, check=True, capture_output=True, timeout=300)
        dist = checkout / "dist"
        return {p.relative_to(dist).as_posix(): md5(p.read_bytes()) for p in dist.rglob("*") if p.is_file()}

    first = build()
    deploy_hash.deploy(context(config, checkout), bucket)
    about = checkout / "src" / "pages" / "about.astro"
    about.write_text(about.read_text().replace("</Base>", "<p>Now open on Sundays.</p>\n</Base>"))
    second = build()
    changed = {key for key, digest in second.items() if first.get(key) != digest}
    assert "about/index.html" in changed and len(changed) < len(second)

    client, calls = client_with_calls(config)
    report = deploy_hash.deploy_build(checkout / "dist", bucket, client, POLICY)
    assert sorted(calls.put_keys()) == sorted(changed)
    assert (report.uploaded, report.skipped) == (len(changed), len(second) - len(changed))
    assert {key: md5(body) for key, body in bucket_bodies(s3, bucket).items()} == second


# ---------------------------------------------------------------- bin/redeploy, from a shell


def shell(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def operator(aws_env: dict[str, str], tmp_path: Path, s3: Any) -> dict[str, Any]:
    """A workspace checkout with a build, its client's bucket, and the operator's environment."""
    client_id = f"c{uuid.uuid4().hex[:10]}"
    checkout = tmp_path / "workspace" / client_id / "u1" / "site"
    files = site("v1", ["", "about"])
    write_build(checkout / "dist", files)
    bucket = f"edit-{client_id}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(aws_env, WORKSPACE_PATH=str(tmp_path / "workspace"), S3_BUCKET="edit-{clientId}")
    return {"checkout": checkout, "bucket": bucket, "env": env, "files": files}


def test_redeploy_help(operator):
    done = shell("bin/redeploy --help", operator["env"])
    assert done.returncode == 0
    assert "--dry-run" in done.stdout and "--bucket" in done.stdout and "checkout" in done.stdout


def test_redeploy_dry_run_prints_the_plan_and_changes_nothing(operator, s3):
    bucket = operator["bucket"]
    s3.put_object(Bucket=bucket, Key="old/index.html", Body=b"stale")
    s3.put_object(Bucket=bucket, Key="robots.txt", Body=operator["files"]["robots.txt"])
    before = snapshot(s3, bucket)
    done = shell(f"bin/redeploy {shlex.quote(str(operator['checkout']))} --dry-run", operator["env"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"plan for {operator['checkout'] / 'dist'} -> s3://{bucket}:")
    assert "upload  about/index.html  (new)" in lines
    assert "skip    robots.txt  (unchanged (md5 matches ETag))" in lines
    assert lines[-1] == "delete  old/index.html  (not in the build)"
    assert len(lines) == 1 + len(operator["files"]) + 1
    assert snapshot(s3, bucket) == before


def test_redeploy_publishes_the_build_and_a_rerun_uploads_nothing(operator, s3):
    command = f"bin/redeploy {shlex.quote(str(operator['checkout']))}"
    done = shell(command, operator["env"])
    assert done.returncode == 0, done.stderr
    assert f"{len(operator['files'])} uploaded" in done.stdout
    assert bucket_bodies(s3, operator["bucket"]) == operator["files"]
    again = shell(command, operator["env"])
    assert again.returncode == 0, again.stderr
    assert "0 uploaded" in again.stdout and f"{len(operator['files'])} unchanged" in again.stdout


def test_redeploy_bucket_option_wins_over_the_template(operator, s3):
    other = new_bucket(s3)
    done = shell(f"bin/redeploy {shlex.quote(str(operator['checkout']))} --bucket {other}", operator["env"])
    assert done.returncode == 0, done.stderr
    assert bucket_bodies(s3, other) == operator["files"]
    assert bucket_bodies(s3, operator["bucket"]) == {}


@pytest.mark.parametrize(
    ("arguments", "message_part"),
    [
        ("/no/such/checkout", "no such checkout: /no/such/checkout"),
        ("{tmp}", "cannot tell the client id"),
        ("{checkout} --bucket missing-bucket-zz9", "NoSuchBucket"),
    ],
)
def test_redeploy_errors_are_one_clear_line(operator, tmp_path, arguments, message_part):
    arguments = arguments.format(tmp=shlex.quote(str(tmp_path)), checkout=shlex.quote(str(operator["checkout"])))
    done = shell(f"bin/redeploy {arguments}", operator["env"])
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("redeploy: error: ") and message_part in done.stderr


def test_redeploy_without_a_build_folder_fails_clearly(operator, s3):
    shutil.rmtree(operator["checkout"] / "dist")
    done = shell(f"bin/redeploy {shlex.quote(str(operator['checkout']))}", operator["env"])
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == f"redeploy: error: build folder {operator['checkout'] / 'dist'} is missing: nothing deployed"
    )
    assert bucket_bodies(s3, operator["bucket"]) == {}
