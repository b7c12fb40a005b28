"""The git recovery scripts for operators: `bin/stash`, `bin/push-pending`, `bin/workspace`, `bin/repair`.

Each works on one checkout (`{WORKSPACE_PATH}/{clientId}/{userId}/{repo}`), takes the same workspace lock
as a worker (so it never races one), and uses the workers' own code.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from steps.git.layout import adopt_inner_git_dir, git_dir_for
from steps.git.ledger import Ledger
from steps.git.lock import WorkspaceBusy, workspace_lock
from steps.git.remote import push_pending
from steps.git.repair import broken_states, repair
from steps.git.repo import Git
from steps.git.sessions import drop_stash, restore_session, session_stashes
from steps.processes.shell import CommandFailed
from supervisor.common.logs import setup_logging
from supervisor.contract.config import Config, ConfigError, load_config

LOCK_WAIT_SECONDS = 5.0


class OperatorError(Exception):
    """One line for stderr; exit code 1."""


def _checkout_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkout", type=Path, help="the site checkout: {WORKSPACE_PATH}/{clientId}/{userId}/{repo}")


def _open(checkout: Path) -> tuple[Config, Git]:
    checkout = checkout.resolve()
    adopt_inner_git_dir(checkout, git_dir_for(checkout))  # a checkout from before the repository moved out
    if not git_dir_for(checkout).is_dir():
        raise OperatorError(f"{checkout} is not a git checkout")
    try:
        config = load_config(require_input_queue=False)
    except ConfigError as error:
        raise OperatorError(f"configuration: {error}") from None
    setup_logging("text", "operator")
    return config, Git(checkout, config)


@contextlib.contextmanager
def _locked(checkout: Path) -> Iterator[None]:
    try:
        with workspace_lock(checkout.resolve(), wait=LOCK_WAIT_SECONDS):
            yield
    except WorkspaceBusy:
        raise OperatorError(f"a worker is running in {checkout}; try again when it has finished") from None


def _run(main: object, argv: Sequence[str] | None) -> int:
    try:
        return int(main(argv))  # type: ignore[operator]
    except OperatorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except CommandFailed as error:
        print(f"error: git failed: {error}", file=sys.stderr)
        return 1


def _find_stash(git: Git, prefix: str) -> str:
    matches = [s.sha for s in session_stashes(git) if s.sha.startswith(prefix) or s.ref == prefix]
    if len(matches) != 1:
        raise OperatorError(f"no single session stash matches {prefix!r} (see: list)")
    return matches[0]


def _stash(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="stash",
        description="The session stashes of a checkout: uncommitted "
        "changes put aside for the session branch they belong to.",
    )
    _checkout_argument(parser)
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every session stash: id, branch, command, date")
    actions.add_parser("show", help="the changes in one stash").add_argument("stash", help="id (prefix) or stash@{n}")
    restore = actions.add_parser("restore", help="check out a session branch and re-apply its stashes")
    restore.add_argument("branch")
    actions.add_parser("drop", help="throw one stash away").add_argument("stash", help="id (prefix) or stash@{n}")
    args = parser.parse_args(argv)
    _, git = _open(args.checkout)
    if args.action == "list":
        stashes = session_stashes(git)
        for stash in stashes:
            print(f"{stash.ref:<11} {stash.sha[:12]}  {stash.branch:<30} {stash.command_id:<20} {stash.created}")
        if not stashes:
            print("no session stashes")
        return 0
    if args.action == "show":
        print(git.out("stash", "show", "--include-untracked", "--stat", "--patch", _find_stash(git, args.stash)))
        return 0
    with _locked(args.checkout):
        if args.action == "drop":
            sha = _find_stash(git, args.stash)
            drop_stash(git, sha)
            print(f"dropped {sha[:12]}")
            return 0
        if git.is_dirty():
            raise OperatorError("the checkout has uncommitted changes; commit or stash them first")
        if not git.has_ref(f"refs/heads/{args.branch}"):
            raise OperatorError(f"no branch {args.branch} in {args.checkout}")
        git.run("checkout", "--quiet", args.branch)
        result = restore_session(git, args.branch)
        print(f"restored {len(result.restored)} stash(es) on {args.branch}")
        if result.error:
            raise OperatorError(result.error)
    return 0


def _push_pending(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="push-pending",
        description="Push every branch whose commits could not reach the remote (recorded as pending by a worker).",
    )
    _checkout_argument(parser)
    args = parser.parse_args(argv)
    config, git = _open(args.checkout)
    ledger = Ledger(args.checkout.resolve())
    with _locked(args.checkout):
        if not ledger.pending_pushes():
            print("no pending pushes")
            return 0
        outcomes = push_pending(git, config, ledger)
    for branch, outcome in outcomes.items():
        print(f"{branch}: {outcome}")
    return 0 if all(outcome.pending is None for outcome in outcomes.values()) else 1


def _workspace(argv: Sequence[str] | None) -> int:
    about = "A checkout's state: branch, uncommitted files, pending pushes, stashes, conflict branches, broken states."
    parser = argparse.ArgumentParser(prog="workspace", description=about)
    _checkout_argument(parser)
    args = parser.parse_args(argv)
    _, git = _open(args.checkout)
    ledger = Ledger(args.checkout.resolve())
    print(f"checkout: {args.checkout.resolve()}")
    print(f"branch:   {git.current_branch() or 'detached at ' + (git.head() or 'nothing')[:12]}")
    dirty = git.status_paths()
    print(f"uncommitted: {len(dirty)} file(s)" + "".join(f"\n  {path}" for path in dirty[:50]))
    print("pending pushes: " + (", ".join(ledger.pending_pushes()) or "none"))
    unfinished = ledger.unfinished_command()
    if unfinished:
        print(f"unfinished command: {unfinished.command_id} on {unfinished.branch}")
    stashes = session_stashes(git)
    print(f"session stashes: {len(stashes)}" + "".join(f"\n  {s.sha[:12]} {s.branch} {s.command_id}" for s in stashes))
    refs = git.out(
        "for-each-ref", "--format=%(refname:short)", "refs/heads/*-conflict-*", "refs/remotes/origin/*-conflict-*"
    )
    print("conflict branches: " + (", ".join(refs.split()) or "none"))
    print("broken states: " + (", ".join(broken_states(args.checkout, git)) or "none"))
    return 0


def _repair(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="repair",
        description="Repair what a crash left in a checkout (an "
        "unfinished rebase/merge/cherry-pick, stale locks, a detached HEAD, a stash "
        "cut short), as a worker does before each command.",
    )
    _checkout_argument(parser)
    args = parser.parse_args(argv)
    _, git = _open(args.checkout)
    with _locked(args.checkout):
        done = repair(args.checkout.resolve(), git)
    print("\n".join(done) if done else "nothing to repair")
    return 0


def stash_main(argv: Sequence[str] | None = None) -> int:
    return _run(_stash, argv)


def push_pending_main(argv: Sequence[str] | None = None) -> int:
    return _run(_push_pending, argv)


def workspace_main(argv: Sequence[str] | None = None) -> int:
    return _run(_workspace, argv)


def repair_main(argv: Sequence[str] | None = None) -> int:
    return _run(_repair, argv)
