"""Getting a checkout ready: cloned atomically, fetched (an unreachable remote is a warning), build
output kept out of git, and on the session branch."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from steps.base import StepContext, StepError
from steps.git.ledger import Ledger
from steps.job.access import forget_hand_over
from steps.processes.shell import CommandFailed, CommandTimedOut
from supervisor.contract.branches import is_thread_branch
from supervisor.contract.codes import ErrorCode

log = logging.getLogger(__name__)
NETWORK_TIMEOUT_SECONDS = 300
EXCLUDED = ("node_modules/", ".astro/")


def clone(ctx: StepContext) -> None:
    checkout = ctx.checkout
    checkout.parent.mkdir(parents=True, exist_ok=True)
    if checkout.exists():
        if any(checkout.iterdir()):
            # Not a checkout but not empty: keep it (nothing is ever thrown away) and clone beside it.
            aside = checkout.with_name(f"{checkout.name}.not-a-checkout-{int(time.time())}")
            log.warning("workspace folder is not a git checkout; moved it aside", extra={"to": str(aside)})
            checkout.rename(aside)
        else:
            checkout.rmdir()
    staging = checkout.with_name(f".{checkout.name}.cloning-{os.getpid()}")
    git_dir = ctx.git.git_dir
    remove_cut_short_clones(checkout)
    _clear_git_dir(git_dir)
    staging.mkdir()
    ctx.jobs.prepare_clone_folder(staging)  # what git writes there goes to the job's group
    ctx.git.run(
        "clone",
        "--quiet",
        f"--separate-git-dir={git_dir}",
        "--",
        ctx.command.repo_url,
        str(staging),
        cwd=checkout.parent,
        credentials=True,
        timeout=NETWORK_TIMEOUT_SECONDS,
        repository=False,
    )
    os.chmod(git_dir, 0o700)
    (staging / ".git").unlink()  # git's pointer to the repository: ours is GIT_DIR, never a file in the checkout
    staging.rename(checkout)


def remove_cut_short_clones(checkout: Path) -> None:
    """The staging folders of clones that never reached their rename (`.{name}.cloning-{pid}`): under the
    workspace lock no other clone of this checkout runs, so whatever is there is a leftover."""
    for staging in checkout.parent.glob(f".{checkout.name}.cloning-*"):
        shutil.rmtree(staging, ignore_errors=True)


def _clear_git_dir(git_dir: Path) -> None:
    """Make way for a clone. A repository git cannot read and with no commit is a clone cut short before
    it fetched: removed. One that holds refs is kept aside (nothing committed is ever thrown away)."""
    if not git_dir.exists():
        return
    refs = git_dir / "packed-refs"
    holds_refs = (refs.is_file() and refs.stat().st_size > 0) or any(files for _, _, files in os.walk(git_dir / "refs"))
    if holds_refs:
        aside = git_dir.with_name(f"{git_dir.name}.set-aside-{int(time.time())}")
        log.warning("repository unreadable but holding refs; moved it aside", extra={"to": str(aside)})
        git_dir.rename(aside)
    else:
        shutil.rmtree(git_dir, ignore_errors=True)


def restore_work_tree(ctx: StepContext) -> bool:
    """The repository is there but not its checkout folder: a clone cut short between fetching and the
    rename into place, or the folder removed by hand. The folder is written again from the repository,
    what was staged included, so nothing committed or staged is lost. False when the repository has no
    commit to write (a clone cut short before it fetched): the caller clones afresh."""
    checkout, git = ctx.checkout, ctx.git
    if git.run("rev-parse", "--verify", "--quiet", "HEAD^{commit}", cwd=checkout.parent, ok_codes=(0, 1)).exit_code:
        return False
    remove_cut_short_clones(checkout)
    checkout.mkdir()
    ctx.jobs.prepare_clone_folder(checkout)
    forget_hand_over(checkout)  # every file is new: the workspace step hands them to the job's group
    if (git.git_dir / "index").is_file():
        git.run("checkout-index", "--all", "--force")  # the index: what was staged comes back too
    else:  # no index (written last by a clone): the work tree and the index from HEAD
        git.run("reset", "--quiet", "--hard", "HEAD")
    log.warning("the checkout folder was missing; wrote it again from its repository")
    return True


def _config_identity(ctx: StepContext) -> list[int]:
    info = (ctx.git.git_dir / "config").stat()
    return [info.st_ino, info.st_size, info.st_mtime_ns]


def point_origin_at_the_repository(ctx: StepContext) -> None:
    """origin is the message's repository. Asking git costs a process per command: what it said is kept with
    the config file's identity, and asked again only when that file changed (or the message names another)."""
    url, ledger = ctx.command.repo_url, Ledger(ctx.checkout)
    seen = ledger.origin_seen()
    if seen.get("url") == url and seen.get("config") == _config_identity(ctx):
        return
    current = ctx.git.out("remote", "get-url", "origin", ok_codes=(0, 2))
    if current != url:
        if current:
            ctx.git.run("remote", "set-url", "origin", url)
        else:
            ctx.git.run("remote", "add", "origin", url)
        log.info("origin now points at the message's repository")
    ledger.record_origin(url, _config_identity(ctx))


def fetch(ctx: StepContext) -> bool:
    """Fetch; False (and a warning) when the remote cannot be reached: the command can still work here."""
    point_origin_at_the_repository(ctx)
    try:
        # No auto maintenance here: it would start another git after every fetch (commits still run it).
        ctx.git.run(
            "fetch",
            "--quiet",
            "--prune",
            "--no-auto-maintenance",
            "origin",
            credentials=True,
            timeout=NETWORK_TIMEOUT_SECONDS,
        )
    except (CommandFailed, CommandTimedOut) as error:
        ctx.warnings.append(f"could not fetch from the remote ({error}); working on the local checkout")
        log.warning("fetch failed; going on with the local checkout: %s", error)
        return False
    return True


def exclude_build_output(ctx: StepContext) -> None:
    """Build output and dependencies are never committed, whatever the site's .gitignore says."""
    exclude = ctx.git.git_dir / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    wanted = [*EXCLUDED, f"/{ctx.config.build_dir.strip('/')}/"]
    present = exclude.read_text().splitlines() if exclude.exists() else []
    missing = [line for line in wanted if line not in present]
    if missing:
        with exclude.open("a") as handle:
            handle.write("\n".join(["", "# added by webordinary-edit", *missing]) + "\n")


def switch_to_branch(ctx: StepContext) -> str:
    """Check out the session branch; returns how: "existing", "tracked" or "created"."""
    git, branch = ctx.git, ctx.command.branch
    if not is_thread_branch(branch) and branch == git.default_remote_branch():
        # A branch a task-shape message asked for: never the repository's default (the contract refuses
        # the usual names; this is the remote's own, whatever it is called).
        raise StepError(ErrorCode.INVALID_MESSAGE, f"branch {branch} is the repository's default branch; refused")
    local_ref, remote_ref = f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"
    refs = git.ref_names(local_ref, remote_ref)
    if git.current_branch() != branch and local_ref in refs:
        git.run("checkout", "--quiet", branch)
    if git.current_branch() == branch:
        remote = refs.get(remote_ref)
        if remote and remote != refs.get(local_ref) and git.succeeds("merge-base", "--is-ancestor", "HEAD", remote_ref):
            git.run("merge", "--quiet", "--ff-only", remote_ref)  # someone pushed to the branch
        return "existing"
    if remote_ref in refs:
        git.run("checkout", "--quiet", "-b", branch, "--track", f"origin/{branch}")
        return "tracked"
    base = git.default_remote_branch()
    if base:
        git.run("checkout", "--quiet", "--no-track", "-b", branch, f"origin/{base}")
    elif git.head():
        git.run("checkout", "--quiet", "-b", branch)
    else:
        git.run("checkout", "--quiet", "--orphan", branch)  # an empty remote
    return "created"
