"""The deploy plan: which built files to upload, which to skip, which bucket objects to delete.

Pure: it compares what the build holds with what the bucket listing says and does no I/O, so every
rule is unit-tested without S3. The order of the plan is the order of the deploy: non-HTML files
first, then HTML (a page goes live only once everything it references is there), deletes last.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Verb = Literal["upload", "skip", "delete"]
HTML_SUFFIXES = (".html", ".htm")


@dataclass(frozen=True)
class LocalFile:
    key: str
    path: Path
    size: int
    md5: str  # hex digest of the content


@dataclass(frozen=True)
class RemoteObject:
    key: str
    etag: str  # without the quotes S3 puts around it
    size: int
    # x-amz-meta-md5 written by our uploads; read (HEAD) only where the ETag is not an MD5.
    stored_md5: str | None = None

    @property
    def multipart(self) -> bool:
        """A multipart ETag is the MD5 of the parts' MD5s plus "-{parts}", not the content's MD5."""
        return "-" in self.etag


@dataclass(frozen=True)
class Action:
    verb: Verb
    key: str
    reason: str
    file: LocalFile | None = None  # the built file; None for deletes


@dataclass(frozen=True)
class Plan:
    assets: tuple[Action, ...]  # uploads of everything but HTML
    pages: tuple[Action, ...]  # uploads of HTML, after every asset is up
    skips: tuple[Action, ...]
    deletes: tuple[Action, ...]  # stale objects, removed once every upload succeeded

    @property
    def uploads(self) -> tuple[Action, ...]:
        return self.assets + self.pages

    @property
    def bytes_to_send(self) -> int:
        return sum(action.file.size for action in self.uploads if action.file)

    def actions(self) -> Iterator[Action]:
        """Every action in the order the deploy performs them (skips between uploads and deletes)."""
        yield from self.assets
        yield from self.pages
        yield from self.skips
        yield from self.deletes


def is_html(key: str) -> bool:
    return key.lower().endswith(HTML_SUFFIXES)


def keys_needing_stored_md5(local: Mapping[str, LocalFile], remote: Mapping[str, RemoteObject]) -> list[str]:
    """Objects whose ETag cannot answer "same content?": multipart ones of the same size as the built file.

    A size difference already answers it, so those cost no HEAD request.
    """
    return sorted(
        key
        for key, obj in remote.items()
        if obj.multipart and obj.stored_md5 is None and key in local and local[key].size == obj.size
    )


def compare(file: LocalFile, obj: RemoteObject | None) -> tuple[Verb, str]:
    """Upload or skip one built file, and why."""
    if obj is None:
        return "upload", "new"
    if file.size != obj.size:
        return "upload", f"size changed ({obj.size} -> {file.size} bytes)"
    if not obj.multipart:
        if obj.etag.lower() == file.md5:
            return "skip", "unchanged (md5 matches ETag)"
        return "upload", "content changed (md5 differs from ETag)"
    if obj.stored_md5 is None:
        return "upload", "multipart object without a stored md5"
    if obj.stored_md5.lower() == file.md5:
        return "skip", "unchanged (md5 matches stored md5)"
    return "upload", "content changed (md5 differs from stored md5)"


def make_plan(local: Mapping[str, LocalFile], remote: Mapping[str, RemoteObject], *, force: bool = False) -> Plan:
    """Compare the build with the bucket. `force` uploads every built file (e.g. after a header policy change)."""
    assets: list[Action] = []
    pages: list[Action] = []
    skips: list[Action] = []
    for key in sorted(local):
        file = local[key]
        verb, reason = ("upload", "forced") if force else compare(file, remote.get(key))
        action = Action(verb, key, reason, file)
        if verb == "skip":
            skips.append(action)
        else:
            (pages if is_html(key) else assets).append(action)
    deletes = [Action("delete", key, "not in the build") for key in sorted(remote) if key not in local]
    return Plan(tuple(assets), tuple(pages), tuple(skips), tuple(deletes))
