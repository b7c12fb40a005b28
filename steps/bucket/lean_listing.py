"""ListObjectsV2 answers read for what the deploy compares: each object's Key, ETag and Size.

botocore walks every element of a listing through its shape model in Python, a quarter of what listing a
1,300-key site cost the deploy step (bench/bench_deploy.py). This handler, registered on the client's
`before-parse` event, takes the `<Contents>` entries out of a successful answer with ElementTree alone
and hands botocore the rest (IsTruncated, NextContinuationToken, EncodingType...) to parse as before,
so pagination, errors and the URL-decoding of keys (botocore asks for `encoding-type=url` and decodes
after the call) stay botocore's. A listed object then has no LastModified, StorageClass or Owner.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from typing import Any

EVENT = "before-parse.s3.ListObjectsV2"
KEPT_FIELDS = ("Key", "ETag")


def register(client: Any) -> None:
    client.meta.events.register(EVENT, take_contents)


def take_contents(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """Move the answer's objects into `customized_response_dict` (botocore merges it into what it parses).

    Anything but a well-formed ListBucketResult with a 200 is left to botocore untouched."""
    if response_dict.get("status_code") != 200:
        return
    try:
        # The same bytes, from the same endpoint, botocore parses with this same parser; expat resolves
        # no external entity and bounds entity expansion.
        root = ElementTree.fromstring(response_dict["body"])  # noqa: S314
    except (ElementTree.ParseError, TypeError, ValueError):
        return
    if local_name(root.tag) != "ListBucketResult":
        return
    entries = [child for child in root if local_name(child.tag) == "Contents"]
    try:
        contents = [listed_object(entry) for entry in entries]
    except ValueError:  # a Size that is not a number: botocore's parser says what is wrong
        return
    if not contents:
        return
    customized_response_dict["Contents"] = contents
    for entry in entries:
        root.remove(entry)
    response_dict["body"] = ElementTree.tostring(root)


def listed_object(entry: ElementTree.Element) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for field in entry:
        name = local_name(field.tag)
        if name in KEPT_FIELDS:
            found[name] = field.text or ""
        elif name == "Size":
            found[name] = int(field.text or "0")
    return found


def local_name(tag: str) -> str:
    """`{http://s3.amazonaws.com/doc/2006-03-01/}Key` → `Key`."""
    return tag.rpartition("}")[2]
