"""Content-hash deploy (DEPLOY_STRATEGY=hash): upload only the built files whose content the bucket lacks.

One ListObjectsV2 call per 1000 keys tells what the bucket holds; a built file whose MD5 equals the
object's ETag (single-part) or the MD5 our uploads store in its metadata (multipart) is skipped.
New and changed files go up concurrently, non-HTML first, then HTML; stale objects are deleted last,
and only when every upload succeeded. On KeyboardInterrupt (SIGINT) no new upload starts, those in
flight finish (a PUT is atomic; an unfinished multipart upload is aborted), nothing is deleted and the
interrupt is re-raised: the bucket holds old pages, new pages whose assets are all there, and every
old asset. Running the deploy again completes it.

The build folder was written by code we did not write: only its regular files are published, each
reached without following any link, and a build folder that is itself a link is not deployed at all.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.manager import TransferManager
from s3transfer.utils import OSUtils

from steps.base import StepContext, StepError
from steps.bucket.content_types import CachePolicy, content_type
from steps.bucket.plan import LocalFile, Plan, RemoteObject, keys_needing_stored_md5, make_plan
from steps.bucket.report import DeployReport
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
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
FOLDER_FLAGS = FILE_FLAGS | os.O_DIRECTORY


def deploy(ctx: StepContext, bucket: str) -> DeployReport:
    policy = CachePolicy.from_config(ctx.config)
    return deploy_build(ctx.build_folder, bucket, make_client(ctx.config), policy, within=ctx.checkout)


def make_client(config: Config) -> S3Client:
    return boto3.session.Session().client(
        "s3",
        region_name=config.aws_region,
        endpoint_url=config.aws_endpoint_url,
        # One pooled connection per upload thread; otherwise urllib3 discards and reopens them.
        config=BotoConfig(max_pool_connections=UPLOAD_CONCURRENCY, retries={"mode": "standard", "max_attempts": 5}),
    )


def deploy_build(
    build_dir: Path,
    bucket: str,
    client: S3Client,
    policy: CachePolicy,
    *,
    force: bool = False,
    within: Path | None = None,
) -> DeployReport:
    """Plan, upload, delete; raise StepError on any failure, KeyboardInterrupt when interrupted.

    `within` is the checkout: no part of build_dir below it may be a link (default: its parent).
    """
    with open_build_folder(build_dir, within) as root:
        plan, scan = plan_from(root, build_dir, bucket, client, force=force)
        with s3_errors(bucket):
            sent = upload_all(client, bucket, plan, policy, root)
            deleted = delete_all(client, bucket, [action.key for action in plan.deletes])
    report = DeployReport(
        "hash",
        uploaded=len(plan.uploads),
        skipped=len(plan.skips),
        deleted=deleted,
        bytes_sent=sent,
        refused=len(scan.refused),
    )
    log.info(
        "deploy to s3://%s: %d uploaded, %d skipped, %d deleted, %d refused, %d bytes sent",
        bucket,
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
        },
    )
    return report


def plan_deploy(
    build_dir: Path, bucket: str, client: S3Client, *, force: bool = False, within: Path | None = None
) -> Plan:
    """Read-only: what a deploy of build_dir to bucket would do (also `bin/redeploy --dry-run`)."""
    with open_build_folder(build_dir, within) as root:
        return plan_from(root, build_dir, bucket, client, force=force)[0]


def plan_from(root: int, build_dir: Path, bucket: str, client: S3Client, *, force: bool) -> tuple[Plan, Scan]:
    """The plan for the build folder opened as `root`, and what its scan found."""
    with ThreadPoolExecutor(max_workers=1) as lister:
        listing = lister.submit(list_bucket, client, bucket)  # the bucket answers while we read the build
        scan = scan_build(root, build_dir)
        with s3_errors(bucket):
            remote = listing.result()
            for key in keys_needing_stored_md5(scan.files, remote):
                metadata = client.head_object(Bucket=bucket, Key=key).get("Metadata", {})
                remote[key] = replace(remote[key], stored_md5=metadata.get(MD5_METADATA_KEY))
    return make_plan(scan.files, remote, force=force), scan


# ---------------------------------------------------------------- reading the build
#
# The build ran code the agent may have written, as a uid that could write anything in the build
# folder: a link (`dist -> ../../..`, `leak -> /etc/…`), a FIFO, a device. Only regular files are
# published, each reached from the build folder's descriptor one name at a time with O_NOFOLLOW, so no
# link is ever followed, not even one pointing inside the build. O_NONBLOCK: a FIFO never hangs an open.


@dataclass(frozen=True)
class BuiltFile(LocalFile):
    """A built file as hashed: the upload reads only this very file, unchanged (see `identity`)."""

    identity: tuple[int, ...]


def identity(info: os.stat_result) -> tuple[int, ...]:
    """Device and inode say which file; a freed inode can be reused at once, so size and both times say
    it is still the one that was hashed (root reading it changes neither)."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


@dataclass
class Scan:
    files: dict[str, BuiltFile] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)  # keys of what was not deployed, with why


@contextmanager
def open_build_folder(build_dir: Path, within: Path | None = None) -> Iterator[int]:
    """A descriptor of the build folder; StepError (before any request) unless it is a real folder."""
    base = within if within is not None else build_dir.parent
    try:
        parts = build_dir.relative_to(base).parts
        base_fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (ValueError, OSError):
        raise StepError(ErrorCode.DEPLOY_FAILED, f"build folder {build_dir} is missing: nothing deployed") from None
    try:
        root = open_below(base_fd, parts, FOLDER_FLAGS)
    except OSError as error:
        raise StepError(ErrorCode.DEPLOY_FAILED, folder_problem(base, parts, error)) from None
    finally:
        os.close(base_fd)
    try:
        yield root
    finally:
        os.close(root)


def folder_problem(base: Path, parts: tuple[str, ...], error: OSError) -> str:
    """Why base/parts could not be opened as a folder, in words (a failed build never reaches the bucket)."""
    folder = base.joinpath(*parts)
    path = base
    for part in parts:
        path = path / part
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return f"build folder {folder} is missing: nothing deployed"
        except OSError:
            break
        if stat.S_ISLNK(mode):
            what = "is a symbolic link, not a folder" if path == folder else f"is under a symbolic link ({path})"
            return f"build folder {folder} {what}: nothing deployed"
        if not stat.S_ISDIR(mode):
            return f"build folder {folder}: {path} is not a folder: nothing deployed"
    return f"build folder {folder} cannot be read ({error.strerror}): nothing deployed"


def open_below(folder: int, parts: Sequence[str], flags: int) -> int:
    """Open folder/parts[0]/…/parts[-1] one name at a time, never following a link (ELOOP/ENOTDIR)."""
    if not parts:
        return os.dup(folder)
    opened: list[int] = []
    try:
        for part in parts[:-1]:
            folder = os.open(part, FOLDER_FLAGS, dir_fd=folder)
            opened.append(folder)
        return os.open(parts[-1], flags, dir_fd=folder)
    finally:
        for fd in opened:
            os.close(fd)


def scan_build(root: int, build_dir: Path) -> Scan:
    """Every regular file of the build, hashed, by its bucket key; StepError when there is none.

    Folders are read from an explicit stack, so a hostile depth cannot exhaust Python's recursion.
    """
    scan = Scan()
    pending: list[tuple[str, ...]] = [()]
    try:
        while pending:
            parts = pending.pop()
            folder = open_below(root, parts, FOLDER_FLAGS)
            try:
                for name in sorted(os.listdir(folder)):
                    scan_entry(folder, (*parts, name), build_dir, scan, pending)
            finally:
                os.close(folder)
    except OSError as error:
        raise StepError(ErrorCode.DEPLOY_FAILED, f"reading the build: {error}") from None
    if not scan.files:
        refused = f" ({len(scan.refused)} refused)" if scan.refused else ""
        raise StepError(ErrorCode.DEPLOY_FAILED, f"build folder {build_dir} is empty{refused}: nothing deployed")
    return scan


def scan_entry(
    folder: int, parts: tuple[str, ...], build_dir: Path, scan: Scan, pending: list[tuple[str, ...]]
) -> None:
    """Queue a folder, hash a regular file, refuse anything else (one warning each)."""
    key = "/".join(parts)
    mode = os.stat(parts[-1], dir_fd=folder, follow_symlinks=False).st_mode
    problem = key_problem(parts) or kind_problem(mode)
    if problem is None and stat.S_ISDIR(mode):
        pending.append(parts)
        return
    if problem is None:
        built = read_built_file(folder, parts[-1], key, build_dir)
        if isinstance(built, BuiltFile):
            scan.files[key] = built
            return
        problem = built
    shown = os.fsencode(key).decode("utf-8", "backslashreplace")  # a name's bytes that are not UTF-8, escaped
    log.warning("not deploying %s/%s: %s", build_dir, shown, problem, extra={"key": shown})
    scan.refused.append(f"{shown}: {problem}")


def key_problem(parts: tuple[str, ...]) -> str | None:
    """Why these names cannot make a key inside the bucket's site, if they cannot."""
    if any(part in ("", ".", "..") or "/" in part for part in parts):
        return "its path leaves the build folder"
    try:
        "/".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8"
    return None


def kind_problem(mode: int) -> str | None:
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        return None
    kinds = {stat.S_ISLNK: "a symbolic link", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket"}
    kinds |= {stat.S_ISCHR: "a device", stat.S_ISBLK: "a device"}
    kind = next((name for test, name in kinds.items() if test(mode)), "not a regular file")
    return f"{kind}, only regular files are published"


def read_built_file(folder: int, name: str, key: str, build_dir: Path) -> BuiltFile | str:
    """Hash the file through the very descriptor whose fstat says it is regular; else why not."""
    fd = os.open(name, FILE_FLAGS, dir_fd=folder)
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # swapped after the listing said it was one
            return "not a regular file when opened, only regular files are published"
        digest = hashlib.file_digest(stream, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()
    return BuiltFile(key, build_dir / key, info.st_size, digest, identity(info))


class BuildReader(OSUtils):
    """How s3transfer reads what it uploads: lazily, as its own would, but each file by its key under
    the build folder's descriptor, never through a link, and only while it is the file that was hashed,
    unchanged: what goes up is what the plan compared."""

    def __init__(self, root: int, files: Mapping[str, LocalFile]):
        self._root = root
        self._files = files

    def open(self, filename: str, mode: str) -> BinaryIO:
        if mode != "rb":
            raise ValueError(f"the build is only read, not opened with {mode!r}")
        file = self._files.get(filename)
        if not isinstance(file, BuiltFile):
            raise OSError(errno.ENOENT, "not a file of the scanned build", filename)
        fd = open_below(self._root, filename.split("/"), FILE_FLAGS)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or identity(info) != file.identity:
                raise OSError(errno.ESTALE, "no longer the file that was hashed", str(file.path))
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def get_file_size(self, filename: str) -> int:
        with self.open(filename, "rb") as stream:
            return os.fstat(stream.fileno()).st_size


def list_bucket(client: S3Client, bucket: str) -> dict[str, RemoteObject]:
    objects: dict[str, RemoteObject] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            objects[item["Key"]] = RemoteObject(item["Key"], item["ETag"].strip('"'), item["Size"])
    return objects


def upload_all(client: S3Client, bucket: str, plan: Plan, policy: CachePolicy, root: int) -> int:
    """Upload the plan's files, assets before pages; return the bytes sent.

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
                futures = [manager.upload(f.key, bucket, f.key, upload_args(f, policy)) for f in files]
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


def delete_all(client: S3Client, bucket: str, keys: list[str]) -> int:
    for start in range(0, len(keys), DELETE_BATCH):
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
