"""The deploy client's listings (steps/bucket/lean_listing.py): the same keys, ETags and sizes as
botocore's own parsing, on moto's server, with botocore still paginating, decoding and raising."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from steps.bucket import deploy_hash, lean_listing
from steps.bucket.site import list_site, objects

# Keys botocore URL-decodes (it asks for encoding-type=url) and XML escapes: both must survive.
AWKWARD_KEYS = [
    "index.html",
    "a b/c&d<e>.html",
    "plus+sign/100%.html",
    "café/naïve-日本.html",
    "quote'\"/x.css",
    "threads/t1/index.html",
    "z" * 200 + ".js",
]


def whole_listing(s3: Any, bucket: str, **listing: str) -> list[tuple[str, str, int]]:
    """What botocore's own parsing gives, from the test's plain client."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, **listing):
        found += [(item["Key"], item["ETag"].strip('"'), item["Size"]) for item in page.get("Contents", [])]
    return found


def test_the_lean_listing_gives_what_botocore_gives_across_pages(config, s3, bucket):
    for n, key in enumerate(AWKWARD_KEYS + [f"page-{i:03}/index.html" for i in range(30)]):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x" * n)
    client = deploy_hash.make_client(config)
    for listing in ({}, {"Prefix": "threads/"}, {"StartAfter": "page-010"}, {"PaginationConfig": {"PageSize": 4}}):
        pages = list(client.get_paginator("list_objects_v2").paginate(Bucket=bucket, **listing))
        lean = [
            (item["Key"], item["ETag"].strip('"'), item["Size"]) for page in pages for item in page.get("Contents", [])
        ]
        assert lean == whole_listing(s3, bucket, **listing), listing
        # The lean path was taken: botocore's own parsing would have given LastModified.
        assert all("LastModified" not in item for page in pages for item in page.get("Contents", []))
    assert len(list(objects(client, bucket))) == len(AWKWARD_KEYS) + 30
    assert sorted(list_site(client, bucket, "")) == sorted(
        key for key in AWKWARD_KEYS + [f"page-{i:03}/index.html" for i in range(30)] if not key.startswith("threads/")
    )


def test_an_empty_bucket_and_a_missing_one_are_answered_as_botocore_answers_them(config, s3, bucket):
    client = deploy_hash.make_client(config)
    assert list_site(client, bucket, "") == {}
    with pytest.raises(ClientError) as raised:
        list_site(client, f"missing-{uuid.uuid4().hex[:8]}", "")
    assert raised.value.response["Error"]["Code"] == "NoSuchBucket"


NS = "http://s3.amazonaws.com/doc/2006-03-01/"
LISTING = (
    f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{NS}"><Name>b</Name>'
    "<IsTruncated>true</IsTruncated><NextContinuationToken>tok</NextContinuationToken>"
    "<Contents><Key>a%20b</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
    '<ETag>"e1"</ETag><Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents>'
    "</ListBucketResult>"
)


def call(body: bytes, status: int = 200) -> tuple[dict[str, Any], dict[str, Any]]:
    response = {"status_code": status, "body": body, "headers": {}}
    customized: dict[str, Any] = {}
    lean_listing.take_contents(response_dict=response, customized_response_dict=customized)
    return response, customized


def test_the_objects_are_taken_out_and_the_rest_is_left_for_botocore():
    response, customized = call(LISTING.format(size=7).encode())
    assert customized == {"Contents": [{"Key": "a%20b", "ETag": '"e1"', "Size": 7}]}
    assert b"Contents" not in response["body"] and b"<ns0:NextContinuationToken>tok<" in response["body"]


@pytest.mark.parametrize(
    "body, status",
    [
        (LISTING.format(size=7).encode(), 404),  # an error answer
        (b"<Error><Code>InternalError</Code></Error>", 200),  # an error in a 200
        (b"<ListBucketResult><Contents>", 200),  # cut short
        (LISTING.format(size="seven").encode(), 200),  # botocore's parser says what is wrong
    ],
)
def test_anything_but_a_well_formed_listing_is_left_to_botocore(body, status):
    response, customized = call(body, status)
    assert response["body"] == body and customized == {}
