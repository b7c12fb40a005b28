"""The worker's side of a warm build: one request to the supervisor's manager (steps/warm/manager.py).

`WarmUnavailable` means: build cold (no manager, the site is not plainly Astro, the server could not
start or its build failed, so the cold build has the last word). An interrupt (the worker's Stopped)
closes the connection, and the manager ends the server mid-build.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Set by the supervisor for its workers (supervisor/warm_builds.py); internal, not configuration.
SOCKET_VARIABLE = "WEBORDINARY_WARM_BUILDS"
# Beyond the build's own timeout, which the manager enforces: its start, and a margin.
MARGIN_SECONDS = 90.0
REPLY_LIMIT = 64 * 1024


class WarmUnavailable(Exception):
    """Build cold instead; the message says why."""


class WarmTimedOut(Exception):
    pass


@dataclass(frozen=True)
class WarmBuild:
    server_started: bool
    builds: int  # builds this server has done, this one included
    rss_mib: int


def build(checkout: Path, timeout: float, context: dict[str, str]) -> WarmBuild:
    path = os.environ.get(SOCKET_VARIABLE)
    if not path:
        raise WarmUnavailable("no warm build manager (BUILD_MODE=warm is read by the supervisor)")
    request = {"checkout": str(checkout), "timeoutSeconds": timeout, **context}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout + MARGIN_SECONDS)
            conn.connect(path)
            conn.sendall(json.dumps(request).encode() + b"\n")
            reply = read_object(conn, REPLY_LIMIT)
    except OSError as error:
        raise WarmUnavailable(f"the warm build manager did not answer: {error}") from None
    if reply.get("ok") is True:
        return WarmBuild(bool(reply.get("serverStarted")), int(reply.get("builds", 0)), int(reply.get("rssMiB", 0)))
    error = str(reply.get("error") or "no reason given")[:2000]
    if reply.get("timedOut"):
        raise WarmTimedOut(f"did not finish within {timeout:g} s")
    raise WarmUnavailable(f"the warm build failed: {error}")


def read_object(conn: socket.socket, limit: int) -> dict[str, Any]:
    """One JSON object on one line: the protocol both ways. ConnectionError for anything else."""
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("the connection closed before the line ended")
        data += chunk
        if len(data) > limit:
            raise ConnectionError("the line is too long")
    try:
        found = json.loads(data.partition(b"\n")[0])
    except ValueError:
        raise ConnectionError("the line is not JSON") from None
    if not isinstance(found, dict):
        raise ConnectionError("the line is not a JSON object")
    return found
