"""`npm ci` only when package-lock.json changed since the last install in this checkout."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from steps.processes import shell
from supervisor.common.files import write_atomic

log = logging.getLogger("steps.processes.deps")
STAMP_NAME = ".webordinary-install.sha256"
INSTALL_TIMEOUT_SECONDS = 900
INSTALLED, INSTALLED_OUT_OF_SYNC = "installed", "installed-out-of-sync"
# What `npm ci` says when package.json and package-lock.json disagree.
OUT_OF_SYNC = ("can only install packages when your package.json and package-lock.json", "are in sync")
OUT_OF_SYNC_WARNING = (
    "package-lock.json is out of sync with package.json: the dependencies were installed as `npm install` would, "
    "and the committed lockfile was left as it is; run `npm install` and commit the lockfile"
)


def _manifest_digest(checkout: Path) -> tuple[str, list[str]] | None:
    """(digest, npm argv) for the checkout's manifest, or None when it is not an npm project."""
    lock = checkout / "package-lock.json"
    manifest = checkout / "package.json"
    if lock.is_file():
        argv = ["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"]
        return hashlib.sha256(lock.read_bytes()).hexdigest(), argv
    if manifest.is_file():
        argv = ["npm", "install", "--no-audit", "--no-fund", "--prefer-offline"]
        return hashlib.sha256(manifest.read_bytes()).hexdigest(), argv
    return None


def ensure_dependencies(checkout: Path) -> str:
    """Install when the lockfile changed; returns "installed", "installed-out-of-sync" (see
    OUT_OF_SYNC_WARNING), "up-to-date" or "not-npm". Raises shell.CommandFailed when npm fails."""
    found = _manifest_digest(checkout)
    if found is None:
        return "not-npm"
    digest, argv = found
    stamp = checkout / "node_modules" / STAMP_NAME
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return "up-to-date"
    log.info("lockfile changed since the last install; running %s", " ".join(argv[:2]))
    outcome = INSTALLED
    try:
        _npm(argv, checkout)
    except shell.CommandFailed as error:
        if argv[1] != "ci" or not any(words in error.stderr for words in OUT_OF_SYNC):
            raise
        log.warning("package-lock.json is out of sync with package.json; installing as `npm install` would")
        _install_keeping_lockfile(checkout)
        outcome = INSTALLED_OUT_OF_SYNC
    # Written by rename, so a checkout whose node_modules is hard-linked from another keeps its own.
    # (a project without dependencies gets no node_modules from npm: write_atomic creates it)
    write_atomic(stamp, digest + "\n")
    return outcome


def _npm(argv: list[str], checkout: Path) -> None:
    # npm runs install scripts of third-party packages: no credentials for them.
    shell.run(argv, cwd=checkout, env=shell.scrubbed_env(), timeout=INSTALL_TIMEOUT_SECONDS, log_output=True)


def _install_keeping_lockfile(checkout: Path) -> None:
    """`npm install` for a lockfile `npm ci` rejects; the committed lockfile is the user's and is put
    back as it was (npm would rewrite it, and the change would ride along with the next commit)."""
    lock = checkout / "package-lock.json"
    committed = lock.read_bytes()
    try:
        _npm(["npm", "install", "--no-audit", "--no-fund", "--prefer-offline", "--no-save"], checkout)
    finally:
        lock.write_bytes(committed)
