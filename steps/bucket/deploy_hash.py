"""Content-hash deploy (DEPLOY_STRATEGY=hash): upload only the built files whose content the bucket lacks.

One ListObjectsV2 call per 1000 keys tells what the site holds (the bucket's shared site, or a thread's
folder `threads/{label}/`: steps/bucket/site.py; neither touches the other's objects); a built file
whose MD5 equals the object's ETag (single-part) or the MD5 our uploads store in its metadata
(multipart) is skipped.
New and changed files go up concurrently, non-HTML first, then HTML; stale objects are deleted last,
and only when every upload succeeded. On KeyboardInterrupt (SIGINT) no new upload starts, those in
flight finish (a PUT is atomic; an unfinished multipart upload is aborted), nothing is deleted and the
interrupt is re-raised: the bucket holds old pages, new pages whose assets are all there, and every
old asset. Running the deploy again completes it.

The build folder was written by code we did not write: only its regular files are published, each
reached without following any link, and a build folder that is itself a link is not deployed at all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.manager import TransferManager

from steps.base import StepContext, StepError
from steps.bucket import lean_listing
from steps.bucket.build_folder import BuildReader, Scan, open_build_folder, scan_build
from steps.bucket.content_types import CachePolicy, content_type
from steps.bucket.digests import DigestCache, cache_folder_for
from steps.bucket.plan import LocalFile, Plan, keys_needing_stored_md5, make_plan
from steps.bucket.report import DeployReport
from steps.bucket.site import check_prefix, list_site, reserved_folder, site_url
from supervisor.contract.codes import ErrorCode
from supervisor.contract.config import Config

log = logging.getLogger("steps.deploy")

S3Client = Any  # botocore generates the client class at run time
MiB = 1024 * 1024
UPLOAD_CONCURRENCY = 16
# Module constants (read at each deploy) so tests can lower them; 8 MiB is boto3's own default.
MULTIPART_THRESHOLD = 8 * MiB
MULTIPART_CHUNKSIZE = 8 * MiB
MD5_METADATA_KEY = "md5"  # x-amz-meta-md5 on every object we upload
DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes


def deploy(ctx: StepContext, bucket: str, prefix: str = "") -> DeployReport:
    policy = CachePolicy.from_config(ctx.config)
    client = client_for(ctx.config)

    def fenced() -> None:  # the deletions come after every upload: a takeover may have come meanwhile
        ctx.check_lease("deleting stale objects")

    digests = DigestCache.load(cache_folder_for(ctx.checkout))
    return deploy_build(
        ctx.build_folder,
        bucket,
        client,
        policy,
        prefix=prefix,
        within=ctx.checkout,
        before_delete=fenced,
        digests=digests,
    )


_early: tuple[Config, Future[S3Client]] | None = None  # one worker runs one command, with one config


def make_client_early(config: Config) -> None:
    """Start making the client for `config` on a daemon thread; client_for() takes it when it is wanted."""
    global _early
    if _early is not None and _early[0] is config:
        return
    made: Future[S3Client] = Future()
    _early = (config, made)

    def make() -> None:
        try:
            made.set_result(make_client(config))
        except BaseException as error:  # handed to whoever takes the client, raised there
            made.set_exception(error)

    threading.Thread(target=make, name="s3-client", daemon=True).start()


def client_for(config: Config) -> S3Client:
    """The client made early for this config, or a new one."""
    global _early
    early, _early = _early, None
    return early[1].result() if early is not None and early[0] is config else make_client(config)


def make_client(config: Config, *, full_responses: bool = False) -> S3Client:
    """The deploy's client, unless `full_responses`. The deploy reads no timestamp, so its responses keep
    them as text (botocore's parsing of LastModified was a quarter of listing a 1,300-key site; the aws
    CLI turns it off the same way for `--cli-timestamp-format none`), and its listings carry each
    object's Key, ETag and Size only (steps/bucket/lean_listing.py)."""
    session = botocore.session.get_session()
    if not full_responses:
        session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=timestamp_text)
    client = boto3.session.Session(botocore_session=session).client(
        "s3",
        region_name=config.aws_region,
        endpoint_url=config.aws_endpoint_url,
        # One pooled connection per upload thread; otherwise urllib3 discards and reopens them.
        config=BotoConfig(max_pool_connections=UPLOAD_CONCURRENCY, retries={"mode": "standard", "max_attempts": 5}),
    )
    if not full_responses:
        lean_listing.register(client)
    client.can_paginate("list_objects_v2")  # loads the paginator model (~9 ms) now, off the deploy's path
    return client


def timestamp_text(value: str) -> str:
    return value


def deploy_build(
    build_dir: Path,
    bucket: str,
    client: S3Client,
    policy: CachePolicy,
    *,
    prefix: str = "",
    force: bool = False,
    within: Path | None = None,
    before_delete: Callable[[], None] = lambda: None,
    digests: DigestCache | None = None,
) -> DeployReport:
    """Plan, upload, delete; raise StepError on any failure, KeyboardInterrupt when interrupted.

    `prefix` is the site: "" the bucket's shared site, `threads/{label}/` a thread's (site.py).
    `within` is the checkout: no part of build_dir below it may be a link (default: its parent).
    `before_delete` runs before each batch of deletions and raises to stop them (a lost lease: what
    another owner has deployed since our listing must not be deleted by us).
    `digests`: the MD5s of content seen before (steps/bucket/digests.py); None computes every one.
    """
    with open_build_folder(build_dir, within) as root:
        plan, scan = plan_from(root, build_dir, bucket, client, prefix=prefix, force=force, digests=digests)
        with s3_errors(bucket):
            sent = upload_all(client, bucket, plan, policy, root, prefix)
            stale = [prefix + action.key for action in plan.deletes]
            deleted = delete_all(client, bucket, stale, before_delete)
    report = DeployReport(
        "hash",
        uploaded=len(plan.uploads),
        skipped=len(plan.skips),
        deleted=deleted,
        bytes_sent=sent,
        refused=len(scan.refused),
    )
    log.info(
        "deploy to %s: %d uploaded, %d skipped, %d deleted, %d refused, %d bytes sent",
        site_url(bucket, prefix),
        report.uploaded,
        report.skipped,
        report.deleted,
        report.refused,
        sent,
        extra={
            "uploaded": report.uploaded,
            "skipped": report.skipped,
            "deleted": deleted,
            "refused": report.refused,
            "bytesSent": sent,
            **({"md5": vars(digests.counts)} if digests is not None else {}),
        },
    )
    return report


def plan_deploy(
    build_dir: Path,
    bucket: str,
    client: S3Client,
    *,
    prefix: str = "",
    force: bool = False,
    within: Path | None = None,
    digests: DigestCache | None = None,
) -> Plan:
    """Read-only: what a deploy of build_dir to the site would do (also `bin/redeploy --dry-run`)."""
    with open_build_folder(build_dir, within) as root:
        return plan_from(root, build_dir, bucket, client, prefix=prefix, force=force, digests=digests)[0]


def plan_from(
    root: int,
    build_dir: Path,
    bucket: str,
    client: S3Client,
    *,
    prefix: str,
    force: bool,
    digests: DigestCache | None = None,
) -> tuple[Plan, Scan]:
    """The plan for the build folder opened as `root` (keys relative to the site), and what its scan found."""
    check_prefix(prefix)
    with ThreadPoolExecutor(max_workers=1) as lister:
        listing = lister.submit(list_site, client, bucket, prefix)  # the bucket answers while we read the build
        scan = scan_build(root, build_dir, reserved_folder(prefix), digests)
        if digests is not None:
            digests.save()  # facts about content (BLAKE3 → MD5), true whatever the deploy does next
        with s3_errors(bucket):
            remote = listing.result()
            for key in keys_needing_stored_md5(scan.files, remote):
                metadata = client.head_object(Bucket=bucket, Key=prefix + key).get("Metadata", {})
                remote[key] = replace(remote[key], stored_md5=metadata.get(MD5_METADATA_KEY))
    return make_plan(scan.files, remote, force=force), scan


# ---------------------------------------------------------------- reading the build


def upload_all(client: S3Client, bucket: str, plan: Plan, policy: CachePolicy, root: int, prefix: str = "") -> int:
    """Upload the plan's files under `prefix`, assets before pages; return the bytes sent.

    s3transfer's manager is the bounded pool: leaving its block by an exception (KeyboardInterrupt, a
    failed upload) cancels every queued upload, lets those in flight finish (or aborts their multipart
    upload) and waits for them, so no upload starts after an interrupt and none outlives the deploy.
    Files are named by key and read through BuildReader, from the build folder opened as `root`.
    """
    transfer = TransferConfig(
        max_concurrency=UPLOAD_CONCURRENCY,
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=MULTIPART_CHUNKSIZE,
    )
    done = sent = 0
    try:
        reader = BuildReader(root, {action.key: action.file for action in plan.uploads if action.file})
        with TransferManager(client, transfer, osutil=reader) as manager:
            for wave in (plan.assets, plan.pages):  # a page goes up only once every asset is there
                files = [action.file for action in wave if action.file]
                # The file is named by its key in the build; its object's key is under the site's prefix.
                futures = [manager.upload(f.key, bucket, prefix + f.key, upload_args(f, policy)) for f in files]
                for file, future in zip(files, futures, strict=True):
                    future.result()
                    done += 1
                    sent += file.size
    except KeyboardInterrupt:
        log.warning("deploy interrupted after %d of %d uploads: nothing deleted", done, len(plan.uploads))
        raise
    return sent


def upload_args(file: LocalFile, policy: CachePolicy) -> dict[str, Any]:
    return {
        "ContentType": content_type(file.key),
        "CacheControl": policy.for_key(file.key),
        # Always stored: a multipart ETag is not the content's MD5, this is what the next deploy compares.
        "Metadata": {MD5_METADATA_KEY: file.md5},
    }


def delete_all(client: S3Client, bucket: str, keys: list[str], before_delete: Callable[[], None] = lambda: None) -> int:
    for start in range(0, len(keys), DELETE_BATCH):
        before_delete()
        batch = [{"Key": key} for key in keys[start : start + DELETE_BATCH]]
        errors = client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True}).get("Errors", [])
        if errors:
            first = errors[0]
            raise StepError(
                ErrorCode.DEPLOY_FAILED,
                f"deploy to s3://{bucket}: {len(errors)} stale objects not deleted, "
                f"first {first.get('Key')}: {first.get('Code')} {first.get('Message')}",
            )
    return len(keys)


@contextmanager
def s3_errors(bucket: str) -> Iterator[None]:
    """S3, network and local read errors become one DEPLOY_FAILED line."""
    try:
        yield
    except (BotoCoreError, ClientError, S3UploadFailedError, OSError) as error:
        reason = " ".join(str(error).split())  # some botocore messages span lines
        raise StepError(ErrorCode.DEPLOY_FAILED, f"deploy to s3://{bucket}: {reason}"[:500]) from None
