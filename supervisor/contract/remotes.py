"""What a message's repository may be: a remote git can reach with the transports we allow, whose last
path part names the checkout's folder, and never another workspace's repository on this machine."""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit

from supervisor.contract.invalid import CONTROL_CHARS, LONE_SURROGATE, InvalidMessage

# Schemes git may use for a site remote; "ext::" and friends can run commands, so they are refused.
REMOTE_URL = re.compile(r"^((https?|ssh|git|file)://\S+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:\S+|/\S+)$")
REPO_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def repo_name_from_url(url: str) -> str:
    """The last path part of a git URL without `.git`: the checkout's folder name."""
    tail = re.split(r"[/:]", url.rstrip("/"))[-1]
    name = tail[:-4] if tail.endswith(".git") else tail
    if not REPO_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"cannot take a folder name from repository URL {url!r}")
    return name


def check_repo_url(url: str, command_id: str | None = None) -> str:
    if len(url) > 2048 or not REMOTE_URL.fullmatch(url) or CONTROL_CHARS.search(url) or LONE_SURROGATE.search(url):
        raise InvalidMessage("repoUrl must be an https, ssh, git or file URL (or an absolute path)", command_id)
    try:
        repo_name_from_url(url)
    except ValueError as error:
        raise InvalidMessage(str(error), command_id) from None
    return url


def local_repository(url: str) -> str | None:
    """The folder a remote on this machine names (an absolute path or a `file://` URL), else None."""
    if url.startswith("/"):
        return url
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        return unquote(parts.path)
    return None


def repository_inside_workspaces(url: str, workspace_path: str) -> str | None:
    """Why a remote under WORKSPACE_PATH is refused, else None. Such a remote is another workspace's
    repository (or the supervisor's records): cloning it would hand one client's site to another's agent,
    and pushing would write into it. Links are followed, as git would follow them."""
    local = local_repository(url)
    if local is None:
        return None
    path, root = os.path.realpath(local), os.path.realpath(workspace_path)
    if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
        return "repoUrl names a folder inside WORKSPACE_PATH (another workspace's repository); refused"
    return None


def repo_url_for(template: str, client_id: str) -> str:
    """REPO_URL with {clientId} substituted."""
    return template.replace("{clientId}", client_id)
