"""What a warm server depends on in a checkout: whether the site can be built warm at all, and the
fingerprint of what a long-lived Node process would keep stale.

Astro reads the site's pages, content and styles afresh in each build(); what Node itself caches is
not: modules imported natively (the config's own imports, the integrations in node_modules). So a
server is restarted when any script, any top-level file, or the installed dependencies changed. The
checkout is the job's: nothing here follows a link or opens more than one small file.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from steps.job.untrusted import read_regular

# The build command warm mode stands in for, and the site's build script it must find behind it.
DEFAULT_BUILD_COMMAND = ("npm", "run", "build")
ASTRO_BUILD_SCRIPT = "astro build"
MANIFEST_LIMIT = 1 << 20
# Files Node can import natively: a change to one of them restarts the server.
SCRIPT_SUFFIXES = frozenset({".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".jsx", ".tsx", ".json", ".node"})
SKIPPED_FOLDERS = frozenset({"node_modules", ".git", ".astro"})
# Installed dependencies: npm rewrites its hidden lockfile on every install. (Not node_modules itself:
# a build adds its caches there.)
DEPENDENCY_MARKERS = ("node_modules/.package-lock.json", "node_modules/astro/package.json")


def why_not_warm(checkout: Path, build_command: tuple[str, ...]) -> str | None:
    """None when a warm build does what `build_command` would, else why the build runs cold."""
    if tuple(build_command) != DEFAULT_BUILD_COMMAND:
        return f"BUILD_COMMAND is not {' '.join(DEFAULT_BUILD_COMMAND)}"
    try:
        manifest = json.loads(_small_file(checkout / "package.json"))
    except (OSError, ValueError) as error:
        return f"package.json unreadable: {error}"
    scripts = manifest.get("scripts") if isinstance(manifest, dict) else None
    script = scripts.get("build") if isinstance(scripts, dict) else None
    if not isinstance(script, str) or " ".join(script.split()) != ASTRO_BUILD_SCRIPT:
        return f'the build script is not "{ASTRO_BUILD_SCRIPT}"'
    for hook in ("prebuild", "postbuild"):  # npm would run these around it
        if isinstance(scripts, dict) and hook in scripts:
            return f"package.json has a {hook} script"
    return None


def _small_file(path: Path) -> bytes:
    data = read_regular(path)
    if len(data) > MANIFEST_LIMIT:
        raise ValueError(f"{path.name} is larger than {MANIFEST_LIMIT} bytes")
    return data


def fingerprint(checkout: Path, build_dir: str) -> str:
    """Changes when anything a warm server would hold on to changed (size, mtime, inode of each file)."""
    # The checkout folder itself: replaced or not (its times change whenever dist/ is removed).
    digest = hashlib.sha256(f"{os.lstat(checkout).st_ino}\n".encode())
    skipped = SKIPPED_FOLDERS | {Path(build_dir).parts[0]}
    for relative, info in _watched(checkout, skipped):
        digest.update(f"{relative}\0{_stamp(info)}\n".encode(errors="surrogateescape"))
    for marker in DEPENDENCY_MARKERS:
        try:
            digest.update(f"{marker}\0{_stamp(os.lstat(checkout / marker))}\n".encode())
        except OSError:
            digest.update(f"{marker}\0missing\n".encode())
    return digest.hexdigest()


def _stamp(info: os.stat_result) -> str:
    # Not ctime: linking a file elsewhere (a hard-linked node_modules) changes it, and nothing in it.
    return f"{info.st_mode} {info.st_size} {info.st_mtime_ns} {info.st_ino}"


def _watched(checkout: Path, skipped: frozenset[str] | set[str]) -> Iterator[tuple[str, os.stat_result]]:
    """Every top-level entry, and every script below, in a stable order; no link followed."""
    pending = [""]
    while pending:
        folder = pending.pop()
        try:
            entries = sorted(os.scandir(checkout / folder), key=lambda entry: entry.name)
        except OSError:
            continue
        for entry in entries:
            relative = f"{folder}/{entry.name}" if folder else entry.name
            if entry.is_dir(follow_symlinks=False):
                if not (folder == "" and entry.name in skipped):
                    pending.append(relative)
                continue
            if folder == "" or Path(entry.name).suffix in SCRIPT_SUFFIXES:
                info = entry.stat(follow_symlinks=False)
                if not stat.S_ISDIR(info.st_mode):
                    yield relative, info
