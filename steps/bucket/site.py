"""Which part of a client's bucket a deploy owns: the shared site, or one thread's folder (PREVIEW_MODE).

A thread's site is its prefix `threads/{label}/` (supervisor/contract/previews.py): it is listed alone,
and its keys are the build's keys under that prefix. The shared site is the rest of the bucket: the
`threads/` folder is never listed, replaced or deleted by it, and a build may not publish into it
(steps/bucket/build_folder.py refuses it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from steps.bucket.plan import RemoteObject
from supervisor.contract.previews import THREADS_PREFIX, is_thread_label

# S3 lists keys in UTF-8 byte order, and a key is at most 1024 bytes: every key under threads/ sorts
# before this one (U+10FFFF is the greatest character; 8 + 254 * 4 = 1024 bytes).
AFTER_THREADS = THREADS_PREFIX + "\U0010ffff" * 254


def check_prefix(prefix: str) -> str:
    """ "" or `threads/{label}/`; anything else is a bug of ours, never a folder to deploy into."""
    if not prefix:
        return prefix
    label = prefix.removeprefix(THREADS_PREFIX).removesuffix("/")
    if prefix != f"{THREADS_PREFIX}{label}/" or not is_thread_label(label):
        raise ValueError(f"not a site of the bucket: {prefix!r}")
    return prefix


def site_url(bucket: str, prefix: str) -> str:
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def reserved_folder(prefix: str) -> str | None:
    """The folder a build may not publish into: `threads/` when it is the shared site's build."""
    return None if prefix else THREADS_PREFIX


def list_site(client: Any, bucket: str, prefix: str) -> dict[str, RemoteObject]:
    """The site's objects by key relative to it.

    The shared site is read up to the first key under threads/, then on from after the last one there
    could be (StartAfter): the one page that reaches threads/ may show some of its keys, and they are
    dropped, so a shared deploy never compares with, replaces or deletes a thread's object.
    """
    check_prefix(prefix)
    if prefix:
        return {obj.key[len(prefix) :]: relative(obj, prefix) for obj in objects(client, bucket, Prefix=prefix)}
    found: dict[str, RemoteObject] = {}
    for obj in objects(client, bucket):
        if obj.key.startswith(THREADS_PREFIX):
            found.update((o.key, o) for o in objects(client, bucket, StartAfter=AFTER_THREADS))
            break
        found[obj.key] = obj
    return {key: obj for key, obj in found.items() if not key.startswith(THREADS_PREFIX)}


def relative(obj: RemoteObject, prefix: str) -> RemoteObject:
    return RemoteObject(obj.key[len(prefix) :], obj.etag, obj.size, obj.stored_md5)


def objects(client: Any, bucket: str, **listing: str) -> Iterator[RemoteObject]:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, **listing):
        for item in page.get("Contents", []):
            yield RemoteObject(item["Key"], item["ETag"].strip('"'), item["Size"])
