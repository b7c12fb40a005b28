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
    """Install when the lockfile changed; returns "installed", "up-to-date" or "not-npm"."""
    found = _manifest_digest(checkout)
    if found is None:
        return "not-npm"
    digest, argv = found
    stamp = checkout / "node_modules" / STAMP_NAME
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return "up-to-date"
    log.info("lockfile changed since the last install; running %s", " ".join(argv[:2]))
    # npm runs install scripts of third-party packages: no credentials for them.
    shell.run(argv, cwd=checkout, env=shell.scrubbed_env(), timeout=INSTALL_TIMEOUT_SECONDS, log_output=True)
    # Written by rename, so a checkout whose node_modules is hard-linked from another keeps its own.
    # (a project without dependencies gets no node_modules from npm: write_atomic creates it)
    write_atomic(stamp, digest + "\n")
    return "installed"
