"""Content types and Cache-Control of published files (steps/bucket/content_types.py)."""

from __future__ import annotations

import pytest
from bucket_helpers import (
    IMMUTABLE,
    POLICY,
    REVALIDATE,
    md5,
    write_build,
)

from steps.bucket import deploy_hash
from steps.bucket.content_types import CONTENT_TYPES, CachePolicy, content_type
from supervisor.contract.config import ConfigError, load_config

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
