"""Safe names: the folder of a command's uploads, and each placed file's name.

A sender's `name` is a hint, never a path: only its last part is kept, reduced to [A-Za-z0-9._-] (accents
dropped, anything else a hyphen), no leading dot or hyphen, at most MAX_STEM characters, and the extension
the bytes showed. Names that collide (case aside: checkouts may live on case-insensitive disks) get -2, -3 ….
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

UPLOADS = ("public", "uploads")  # below the checkout; Astro copies public/ to the site's root
MAX_STEM = 64
SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")


def command_folder(command_id: str) -> str:
    """The command's folder under public/uploads: its id when that is a safe name, else a slug of it
    and 8 hex of its sha256 (two ids never share a folder)."""
    if SAFE_ID.fullmatch(command_id) and not command_id.endswith("."):
        return command_id
    slug = _reduce(command_id)[:40].strip("-.")
    digest = hashlib.sha256(command_id.encode()).hexdigest()[:8]
    return f"{slug}-{digest}" if slug else digest


def _reduce(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9._-]", "-", ascii_text)).lstrip(".-")


def safe_stem(sent_name: str | None, key: str, index: int) -> str:
    """The name without its extension: from the sender's name, else the key's last part."""
    base = re.split(r"[/\\]", sent_name or key)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    stem = _reduce(stem)[:MAX_STEM].rstrip("-.")
    return stem or f"attachment-{index + 1}"


class UniqueNames:
    """Hands out each name once per command folder."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def take(self, stem: str, extension: str) -> str:
        name, number = f"{stem}.{extension}", 1
        while name.lower() in self._taken:
            number += 1
            name = f"{stem}-{number}.{extension}"
        self._taken.add(name.lower())
        return name
