"""The MD5 of each built file without computing it again when its content has not changed.

The deploy compares every built file's MD5 with what the bucket holds (plan.py). Astro empties the build
folder and writes every file again on each build, so a cache by path and mtime would never hit: this one
is by content. Each file is read once with BLAKE3 (several GB/s, where MD5 does a few hundred MB/s), and
an MD5 already known for that BLAKE3 digest is reused; only new content pays for MD5. A file whose
identity (device, inode, size, both times) is the one recorded for its key is not even read again: a
`bin/redeploy` of an untouched build.

Nothing here decides an upload by itself: the MD5 found is compared with the bucket's ETag as before, and
BLAKE3 is a cryptographic hash, so two contents never share an entry. The cache lives in the repository's
`webordinary/` folder, beside the checkout and out of the job's reach (steps/git/layout.py); one that
cannot be read, or was written by another version, is started afresh. It holds the last deploy's files
only, so it never grows beyond one build.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3

from steps.git.layout import git_dir_for
from supervisor.common.files import write_atomic

log = logging.getLogger("steps.deploy")

FORMAT = 1
CHUNK = 1024 * 1024
FILE_NAME = "deploy-digests.json"


@dataclass
class Counts:
    """How each MD5 was found: by the file's identity, by its content, or computed."""

    unread: int = 0
    known_content: int = 0
    computed: int = 0


@dataclass
class DigestCache:
    path: Path | None  # None: nothing is kept (no repository of ours beside the build)
    by_identity: dict[str, tuple[list[int], str]] = field(default_factory=dict)  # key → (identity, blake3)
    md5_of_content: dict[str, str] = field(default_factory=dict)  # blake3 → md5
    counts: Counts = field(default_factory=Counts)
    _seen: dict[str, tuple[list[int], str]] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path | None) -> DigestCache:
        """The cache kept in `folder` (the repository's webordinary/), or an empty one when in doubt."""
        if folder is None:
            return cls(None)
        path = folder / FILE_NAME
        try:
            kept = json.loads(path.read_text())
            if kept.get("format") != FORMAT:
                raise ValueError("another format")
            by_identity = {str(k): (list(map(int, v[0])), str(v[1])) for k, v in kept["byIdentity"].items()}
            md5_of_content = {str(k): str(v) for k, v in kept["md5OfContent"].items()}
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
            log.info("deploy digest cache not used (%s); starting afresh", error)
            return cls(path)
        return cls(path, by_identity, md5_of_content)

    def md5(self, fd: int, key: str, identity: tuple[int, ...]) -> str:
        """The MD5 of the open file `fd` (read from its start), the built file `key` of this identity."""
        if self.path is None:  # nothing kept, nothing known: BLAKE3 would only add to the cost
            self.counts.computed += 1
            return _digest(fd, hashlib.md5(usedforsecurity=False))
        wanted = list(identity)
        known = self.by_identity.get(key)
        if known is not None and known[0] == wanted and known[1] in self.md5_of_content:
            self._seen[key] = known
            self.counts.unread += 1
            return self.md5_of_content[known[1]]
        content = _digest(fd, blake3.blake3())
        md5 = self.md5_of_content.get(content)
        if md5 is None:
            os.lseek(fd, 0, os.SEEK_SET)
            md5 = _digest(fd, hashlib.md5(usedforsecurity=False))
            self.md5_of_content[content] = md5
            self.counts.computed += 1
        else:
            self.counts.known_content += 1
        self._seen[key] = (wanted, content)
        return md5

    def save(self) -> None:
        """Keep this deploy's files only; a failure to write costs the next deploy time, nothing else."""
        if self.path is None:
            return
        contents = {content for _, content in self._seen.values()}
        kept: dict[str, Any] = {
            "format": FORMAT,
            "byIdentity": self._seen,
            "md5OfContent": {c: md5 for c, md5 in self.md5_of_content.items() if c in contents},
        }
        try:
            self.path.parent.mkdir(mode=0o700, exist_ok=True)
            write_atomic(self.path, json.dumps(kept, separators=(",", ":")))
        except OSError as error:
            log.warning("deploy digest cache not saved: %s", error)


def cache_folder_for(checkout: Path) -> Path | None:
    """`webordinary/` of the checkout's repository, when that repository is a folder of ours (not a link,
    owned by us): where the job cannot write. None otherwise: no cache."""
    git_dir = git_dir_for(checkout)
    try:
        info = git_dir.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        return None
    return git_dir / "webordinary"


def _digest(fd: int, hasher: Any) -> str:
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while True:
        read = os.readv(fd, [buffer])
        if not read:
            return str(hasher.hexdigest())
        hasher.update(view[:read])
