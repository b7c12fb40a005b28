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

    def as_details(self) -> dict[str, Any]:
        details = asdict(self)
        details["bytesSent"] = details.pop("bytes_sent")
        return {k: v for k, v in details.items() if v is not None}
