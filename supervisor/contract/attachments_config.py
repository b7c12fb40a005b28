"""Where attachments may come from and what they may be (issue 20): ATTACHMENTS_* variables.

The worker fetches an attachment only from ATTACHMENTS_BUCKET (a message's `key`) or from a bucket an
`s3Uri` names that is ATTACHMENTS_BUCKET or listed in ATTACHMENTS_BUCKETS: never from a URL. Both may
hold `{clientId}`, so each client's attachments can live in a bucket of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from supervisor.contract import env_values as ev
from supervisor.contract.attachments import BUCKET_NAME, MAX_ATTACHMENTS
from supervisor.contract.env_values import ConfigError

MIB = 1024 * 1024
MAX_MB = 100  # per file: the agent reads images, and every one is committed to the site's repository


@dataclass(frozen=True)
class AttachmentsConfig:
    bucket: str | None = None  # ATTACHMENTS_BUCKET: a message's `key` is read from it
    buckets: tuple[str, ...] = ()  # ATTACHMENTS_BUCKETS: further buckets an `s3Uri` may name
    max_files: int = 5  # ATTACHMENTS_MAX_FILES: per command; 0 refuses every attachment
    max_bytes: int = 10 * MIB  # ATTACHMENTS_MAX_MB, per file
    allow_svg: bool = False  # ATTACHMENTS_ALLOW_SVG

    def default_bucket_for(self, client_id: str) -> str | None:
        return self.bucket.replace("{clientId}", client_id) if self.bucket else None

    def allowed_buckets_for(self, client_id: str) -> frozenset[str]:
        named = (self.bucket, *self.buckets) if self.bucket else self.buckets
        return frozenset(name.replace("{clientId}", client_id) for name in named)


def _bucket(name: str, variable: str) -> str:
    """A bucket name, or a template whose `{clientId}` makes one (checked with a sample id)."""
    if not BUCKET_NAME.fullmatch(name.replace("{clientId}", "client")) or ".." in name:
        raise ConfigError(f"{variable}: {name!r} is not an S3 bucket name (3-63 of a-z 0-9 . -, {{clientId}} allowed)")
    return name


def _max_bytes(env: Mapping[str, str]) -> int:
    megabytes = ev.number(env, "ATTACHMENTS_MAX_MB", 10, minimum=0, integer=False)
    if not 0 < megabytes <= MAX_MB:
        raise ConfigError(f"ATTACHMENTS_MAX_MB must be above 0 and at most {MAX_MB}, got {megabytes:g}")
    return int(megabytes * MIB)


def load_attachments_config(env: Mapping[str, str]) -> AttachmentsConfig:
    bucket = ev.text(env, "ATTACHMENTS_BUCKET", None)
    listed = (ev.text(env, "ATTACHMENTS_BUCKETS", None) or "").split(",")
    max_files = ev.number(env, "ATTACHMENTS_MAX_FILES", 5, minimum=0, integer=True)
    if max_files > MAX_ATTACHMENTS:
        raise ConfigError(f"ATTACHMENTS_MAX_FILES must be at most {MAX_ATTACHMENTS}, got {max_files}")
    return AttachmentsConfig(
        bucket=_bucket(bucket, "ATTACHMENTS_BUCKET") if bucket else None,
        buckets=tuple(_bucket(name.strip(), "ATTACHMENTS_BUCKETS") for name in listed if name.strip()),
        max_files=max_files,
        max_bytes=_max_bytes(env),
        allow_svg=ev.flag(env, "ATTACHMENTS_ALLOW_SVG", False),
    )
