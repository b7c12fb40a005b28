"""What a deploy did, whichever strategy did it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class DeployReport:
    strategy: str
    uploaded: int = 0
    skipped: int = 0
    deleted: int = 0
    bytes_sent: int | None = None
    # Entries of the build not published (links, devices, FIFOs, sockets…); in the details only when
    # some were, since a clean build has none.
    refused: int = 0

    def as_details(self) -> dict[str, Any]:
        details = asdict(self)
        details["bytesSent"] = details.pop("bytes_sent")
        if not details["refused"]:
            del details["refused"]
        return {k: v for k, v in details.items() if v is not None}
