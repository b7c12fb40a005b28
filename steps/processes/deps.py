"""`npm ci` only when package-lock.json changed since the last install in this checkout."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from steps.job.untrusted import NotARegularFile, is_regular, read_regular, write_inside
from steps.processes import shell

if TYPE_CHECKING:
    from steps.job.runner import JobRunner

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
    """(digest, npm argv) for the checkout's manifest, or None when it is not an npm project.
    The files are the job's: a link or a FIFO in their place is not read (npm is left to complain)."""
    lock = checkout / "package-lock.json"
    manifest = checkout / "package.json"
    for path, verb in ((lock, "ci"), (manifest, "install")):
        if not (path.is_symlink() or path.exists()):
            continue
        try:
            content = read_regular(path)
        except NotARegularFile:
            content = b"not a regular file"  # never "up to date": npm runs and says what is wrong
        return hashlib.sha256(content).hexdigest(), ["npm", verb, "--no-audit", "--no-fund", "--prefer-offline"]
    return None


def _stamp(checkout: Path) -> str | None:
    try:
        return read_regular(checkout / "node_modules" / STAMP_NAME).decode(errors="replace").strip()
    except OSError:
        return None


def ensure_dependencies(checkout: Path, jobs: JobRunner | None = None) -> str:
    """Install when the lockfile changed; returns "installed", "installed-out-of-sync" (see
    OUT_OF_SYNC_WARNING), "up-to-date" or "not-npm". Raises shell.CommandFailed when npm fails.
    `jobs` runs npm as the workspace's job (steps/job); without it npm runs as we do."""
    found = _manifest_digest(checkout)
    if found is None:
        return "not-npm"
    digest, argv = found
    if _stamp(checkout) == digest:
        return "up-to-date"
    log.info("lockfile changed since the last install; running %s", " ".join(argv[:2]))
    outcome = INSTALLED
    try:
        _npm(argv, checkout, jobs)
    except shell.CommandFailed as error:
        out_of_sync = any(words in error.stderr for words in OUT_OF_SYNC)
        if argv[1] != "ci" or not out_of_sync or not is_regular(checkout / "package-lock.json"):
            raise  # (a lockfile that is a link is not ours to read and put back: npm's error stands)
        log.warning("package-lock.json is out of sync with package.json; installing as `npm install` would")
        _install_keeping_lockfile(checkout, jobs)
        outcome = INSTALLED_OUT_OF_SYNC
    # Written by rename, so a checkout whose node_modules is hard-linked from another keeps its own;
    # never through a link the job left (a project without dependencies gets no node_modules from npm).
    modules = checkout / "node_modules"
    if not (modules.is_symlink() or modules.exists()):
        modules.mkdir()
    try:
        write_inside(modules, STAMP_NAME, (digest + "\n").encode())
    except OSError as error:
        log.warning("could not note the installed lockfile (%s); npm runs again next time", error)
    return outcome


def _npm(argv: list[str], checkout: Path, jobs: JobRunner | None) -> None:
    # npm runs install scripts of third-party packages: no credentials for them.
    env = shell.scrubbed_env()
    if jobs is None:
        shell.run(argv, cwd=checkout, env=env, timeout=INSTALL_TIMEOUT_SECONDS, log_output=True)
    else:
        jobs.run(argv, env=env, timeout=INSTALL_TIMEOUT_SECONDS, log_output=True)


def _install_keeping_lockfile(checkout: Path, jobs: JobRunner | None) -> None:
    """`npm install` for a lockfile `npm ci` rejects; the committed lockfile is the user's and is put
    back as it was (npm would rewrite it, and the change would ride along with the next commit)."""
    committed = read_regular(checkout / "package-lock.json")
    try:
        _npm(["npm", "install", "--no-audit", "--no-fund", "--prefer-offline", "--no-save"], checkout, jobs)
    finally:
        write_inside(checkout, "package-lock.json", committed)
