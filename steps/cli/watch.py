"""`bin/watch`: rebuild a site checkout when its files change (local development), with the workers' own
build step (and, with --deploy, their deploy step).

watchfiles' DefaultFilter skips .git and node_modules but not the build output or `.astro/`: watching a
site root without skipping them rebuilds forever, so they are added here. Builds run through steps.shell,
so Ctrl-C ends the whole build tree (npm does not forward signals), not only the direct child.
The first build starts once the watcher runs, so that a file saved during it is built again after it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from watchfiles import Change, DefaultFilter, watch

from steps import build, deploy
from steps.base import StepContext, StepError
from steps.git.repo import Git
from supervisor.common.logs import setup_logging
from supervisor.contract.command import parse_command
from supervisor.contract.config import ConfigError, load_config

log = logging.getLogger("steps.cli.watch")
# How often the idle watcher wakes (watchfiles' own timeout): the first wake, at most this long after the
# start, is the signal that the watcher runs; the later ones are ignored.
WAKE_MS = 300


class SiteFilter(DefaultFilter):
    """Source changes only: not the build output, Astro's cache, dependencies or git's own files.

    The build output and Astro's cache are ignored by their place in the checkout, not by name: a
    `src/components/dist/` of the site's own is source like any other folder."""

    def __init__(self, checkout: Path, build_dir: str):
        super().__init__()
        root = checkout.resolve()
        self.ignored_paths = tuple(str(root / part) for part in (build_dir.strip("/"), ".astro"))

    def __call__(self, change: Change, path: str) -> bool:
        if any(path == ignored or path.startswith(ignored + os.sep) for ignored in self.ignored_paths):
            return False
        return super().__call__(change, path)


def _context(checkout: Path, client_id: str) -> StepContext:
    config = load_config(require_input_queue=False)
    body = {
        "instruction": "local rebuild",
        "commandId": "watch",
        "chatThreadId": "watch",
        "clientId": client_id,
        "userId": "local",
        "repoUrl": str(checkout),
    }
    return StepContext(config, parse_command(json.dumps(body)), checkout, Git(checkout, config))


def rebuild(ctx: StepContext, with_deploy: bool) -> bool:
    ctx.build_ok = False
    for name, step in (("build", build.run), ("deploy", deploy.run)) if with_deploy else (("build", build.run),):
        try:
            result = step(ctx)
        except StepError as error:
            log.error("%s failed: %s", name, error)
            return False
        log.info("%s %s", name, result.status, extra={"durationMs": result.duration_ms, **result.details})
    return True


def batches(checkout: Path, build_dir: str) -> Iterator[set[tuple[Change, str]]]:
    """An empty batch as soon as the watcher runs, then each batch of source changes. (watchfiles starts
    watching on the first `next()` and says nothing when it has: its first timeout says so.)"""
    started = False
    for changes in watch(
        checkout,
        watch_filter=SiteFilter(checkout, build_dir),
        raise_interrupt=True,
        rust_timeout=WAKE_MS,
        yield_on_timeout=True,
    ):
        if changes or not started:
            started = True
            yield changes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="watch",
        description="Rebuild a site checkout whenever its files change (BUILD_COMMAND into BUILD_DIR); Ctrl-C stops.",
    )
    parser.add_argument("checkout", type=Path, help="the site folder (a git checkout with package.json)")
    parser.add_argument("--deploy", action="store_true", help="also deploy each good build (DEPLOY_STRATEGY)")
    parser.add_argument("--client-id", default="local", help="names the bucket for --deploy (default: local)")
    parser.add_argument("--once", action="store_true", help="build once and exit (no watching)")
    args = parser.parse_args(argv)
    checkout = args.checkout.resolve()
    if not (checkout / "package.json").is_file():
        print(f"error: {checkout} has no package.json: not a site to build", file=sys.stderr)
        return 1
    try:
        ctx = _context(checkout, args.client_id)
    except (ConfigError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    setup_logging(ctx.config.log_format, "watch")
    if args.once:
        return 0 if rebuild(ctx, args.deploy) else 1
    try:
        for count, changes in enumerate(batches(checkout, ctx.config.build_dir)):
            if changes:
                changed = sorted({Path(p).relative_to(checkout).as_posix() for _, p in changes})
                log.info("changed: %s", ", ".join(changed))
            rebuild(ctx, args.deploy)
            if count == 0:
                log.info("watching %s (Ctrl-C stops)", checkout)
    except KeyboardInterrupt:
        log.info("stopped")
    return 0
