"""Branch names we put into git: a chat thread's own (`thread-{id}`), or one a task-shape message asks
for, which must be safe for git and never a default, release or conflict branch. Records in a checkout
are hostile, so the git ledger checks its branches with the same rules (steps/git/ledger.py)."""

from __future__ import annotations

import hashlib
import re
import subprocess

from supervisor.contract.invalid import MAX_ID_LENGTH

SAFE_REF_COMPONENT = re.compile(r"^[A-Za-z0-9._-]+$")
# A requested `branch` (task shape): `/`-separated components of [A-Za-z0-9._-], none starting with "." or "-",
# none ending with "." or ".lock"; no "..", at most MAX_BRANCH_LENGTH characters, and git must accept it.
MAX_BRANCH_LENGTH = 200
BRANCH_COMPONENT = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
REQUESTED_BRANCH = re.compile(rf"^{BRANCH_COMPONENT}(/{BRANCH_COMPONENT})*$")
# Names a requested branch may not have, compared case-insensitively: the usual default, release and
# publishing branches (the worker also refuses the remote's actual default branch when it pushes).
REFUSED_BRANCH_NAMES = frozenset(
    {
        "main",
        "master",
        "head",
        "trunk",
        "develop",
        "development",
        "dev",
        "production",
        "prod",
        "staging",
        "stable",
        "release",
        "gh-pages",
    }
)
# First components that would make a branch look like another kind of ref (`origin/main`, `refs/…`, `tags/v1`).
REFUSED_BRANCH_PREFIXES = frozenset({"refs", "heads", "tags", "remotes", "origin", "head"})
CONFLICT_BRANCH = re.compile(r"-conflict-[0-9]+\Z")
# All hex of abbreviated-hash length: git would read it as a commit as readily as a branch.
OBJECT_NAME_LIKE = re.compile(r"^[0-9a-fA-F]{7,64}$")


def _git_accepts_ref(ref: str) -> bool:
    result = subprocess.run(["git", "check-ref-format", f"refs/heads/{ref}"], capture_output=True, check=False)
    return result.returncode == 0


def branch_for_thread(thread_id: str) -> str:
    """`thread-{id}`, or a slug plus a hash when the id is not a safe ref component."""
    name = thread_id if thread_id.startswith("thread-") else f"thread-{thread_id}"
    if SAFE_REF_COMPONENT.fullmatch(thread_id) and _git_accepts_ref(name):
        return name
    slug = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", thread_id.lower())).strip("-")[:60].strip("-")
    if slug.startswith("thread-"):
        slug = slug[len("thread-") :]
    digest = hashlib.sha256(thread_id.encode()).hexdigest()[:8]
    return f"thread-{slug}-{digest}" if slug else f"thread-{digest}"


def is_thread_branch(name: object) -> bool:
    """Whether `name` is a branch branch_for_thread can make (it is its own branch: `thread-…`, a safe component)."""
    return (
        isinstance(name, str)
        and name.startswith("thread-")
        and len(name) <= len("thread-") + MAX_ID_LENGTH
        and SAFE_REF_COMPONENT.fullmatch(name) is not None
        and branch_for_thread(name) == name
    )


def branch_refusal(name: object) -> str | None:
    """Why `name` cannot be a requested `branch` (task shape), or None when it can be one.

    The one rule for branches a message names: parse_command applies it to `branch`, and the git ledger
    (steps/git/ledger.py) to recorded branches, which are untrusted input too.
    """
    if not isinstance(name, str) or not name:
        return "branch must be a non-empty string"
    if len(name) > MAX_BRANCH_LENGTH:
        return f"branch is longer than {MAX_BRANCH_LENGTH} characters"
    if not REQUESTED_BRANCH.fullmatch(name) or ".." in name:
        return (
            "branch must be /-separated parts of [A-Za-z0-9._-], none starting with '.' or '-', "
            f"without '..', got {name[:80]!r}"
        )
    parts = name.split("/")
    if any(part.endswith((".", ".lock")) for part in parts):
        return f"branch parts may not end with '.' or '.lock', got {name[:80]!r}"
    if name.lower() in REFUSED_BRANCH_NAMES:
        return f"branch may not be {name!r}: commands never work on a default or release branch"
    if parts[0].lower() in REFUSED_BRANCH_PREFIXES:
        return f"branch may not start with {parts[0] + '/'!r}: it would read as another kind of ref"
    if any(part.lower() == "head" for part in parts):
        return f"branch may not have a part named HEAD, got {name[:80]!r}"
    if CONFLICT_BRANCH.search(name):
        return f"branch may not end with -conflict-N, the names of conflict branches, got {name[:80]!r}"
    if OBJECT_NAME_LIKE.fullmatch(name):
        return f"branch may not be all hex digits (it reads as a commit), got {name!r}"
    if not _git_accepts_ref(name):
        return f"branch is not a valid git branch name, got {name[:80]!r}"
    return None


def is_command_branch(name: object) -> bool:
    """Whether a Command may work on `name`: a thread's branch, or a branch a task message may request."""
    return is_thread_branch(name) or branch_refusal(name) is None
