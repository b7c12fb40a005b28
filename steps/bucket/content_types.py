"""Content-Type and Cache-Control of each deployed object.

Our own table first: slim images ship without /etc/mime.types, and then `mimetypes` does not know
webp, avif, woff2 or webmanifest, and S3 would serve them as binary/octet-stream.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass

from supervisor.contract.config import Config

CONTENT_TYPES: dict[str, str] = {
    "html": "text/html; charset=utf-8",
    "htm": "text/html; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "mjs": "text/javascript; charset=utf-8",
    "json": "application/json",
    "map": "application/json",
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
    "txt": "text/plain; charset=utf-8",
    "webmanifest": "application/manifest+json",
    "pdf": "application/pdf",
}
FALLBACK_CONTENT_TYPE = "application/octet-stream"

# Astro puts every content-hashed file here (`build.assets`): a new content gets a new name,
# so these may be cached forever; anything else keeps its name across builds and must revalidate.
IMMUTABLE_PREFIX = "_astro/"


def content_type(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension in CONTENT_TYPES:
        return CONTENT_TYPES[extension]
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or FALLBACK_CONTENT_TYPE


@dataclass(frozen=True)
class CachePolicy:
    """Cache-Control by key; the values come from DEPLOY_CACHE_CONTROL_* (validated in the config)."""

    immutable: str
    default: str

    def for_key(self, key: str) -> str:
        return self.immutable if key.startswith(IMMUTABLE_PREFIX) else self.default

    @classmethod
    def from_config(cls, config: Config) -> CachePolicy:
        return cls(immutable=config.deploy_cache_control_immutable, default=config.deploy_cache_control_default)
