"""Which containers share the queue and are alive, with their inboxes: one item of the lease table
(`workspace` = ROSTER_KEY, which no workspace can be: their names have slashes) holding a map of members.

A container joins at start, beats every keeper round and leaves on a clean exit. Another container
counts it dead once its beat has stood still for LEASE_SECONDS on *its own* clock (as a lease's
takeover is judged), or at once when it left marked `gone` (a clean exit that could not empty its
inbox). Only a dead member's inbox is adopted, and once empty removed with its entry: the inbox of a
live container is never touched, whether it holds leases or not. One read a round, whatever the number
of workspaces: the keeper never scans the table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("supervisor.sharing.roster")
ROSTER_KEY = "#containers"
_KEY = {"workspace": {"S": ROSTER_KEY}}


@dataclass(frozen=True)
class Member:
    owner: str
    inbox: str
    beat: int
    gone: bool = False  # left cleanly, its inbox not empty: adopt it now


class Roster:
    def __init__(
        self,
        client: Any,
        table: str,
        owner: str,
        lease_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.client, self.table, self.owner, self.lease_seconds, self.clock = client, table, owner, lease_seconds, clock
        self._seen: dict[str, tuple[int, float]] = {}  # owner → (beat, when we first saw it)

    def join(self, inbox: str) -> None:
        self._update("SET #m = if_not_exists(#m, :empty)", values={":empty": {"M": {}}})
        entry = {"inbox": {"S": inbox}, "beat": {"N": "0"}, "joinedAt": {"N": str(int(time.time()))}}
        self._update("SET #m.#me = :entry", names={"#me": self.owner}, values={":entry": {"M": entry}})

    def beat(self) -> bool:
        """One beat; False when we are no longer a member (others took us for dead and swept us)."""
        try:
            self._update(
                "SET #m.#me.#b = #m.#me.#b + :one",
                condition="attribute_exists(#m.#me)",
                names={"#me": self.owner, "#b": "beat"},
                values={":one": {"N": "1"}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def leave(self, *, inbox_left: bool) -> None:
        """A clean exit: gone from the roster, or marked gone when our inbox still holds messages (then
        another container adopts it at once and removes the entry once the inbox is empty)."""
        names = {"#me": self.owner}
        if inbox_left:
            self._update("SET #m.#me.#g = :yes", names={**names, "#g": "gone"}, values={":yes": {"BOOL": True}})
        else:
            self._update("REMOVE #m.#me", names=names)

    def members(self) -> list[Member]:
        reply = self.client.get_item(TableName=self.table, Key=_KEY, ConsistentRead=True)
        entries = reply.get("Item", {}).get("members", {}).get("M", {})
        return [
            Member(
                owner,
                entry.get("M", {}).get("inbox", {}).get("S", ""),
                int(entry.get("M", {}).get("beat", {}).get("N", "0")),
                bool(entry.get("M", {}).get("gone", {}).get("BOOL", False)),
            )
            for owner, entry in entries.items()
        ]

    def dead(self, members: list[Member]) -> list[Member]:
        """The members, other than us, that left marked gone or whose beat we watched stand still for a
        whole lease period; what we watched of members no longer listed is forgotten."""
        now, dead = self.clock(), []
        listed = {m.owner for m in members}
        for owner in set(self._seen) - listed:
            del self._seen[owner]
        for member in members:
            if member.owner == self.owner:
                continue
            seen = self._seen.get(member.owner)
            if seen is None or seen[0] != member.beat:
                self._seen[member.owner] = (member.beat, now)
                seen = self._seen[member.owner]
            if member.gone or now - seen[1] >= self.lease_seconds:
                dead.append(member)
        return dead

    def remove(self, member: Member) -> None:
        """Remove a dead member's entry, unless it beat again meanwhile."""
        try:
            self._update(
                "REMOVE #m.#o",
                condition="#m.#o.#b = :beat",
                names={"#o": member.owner, "#b": "beat"},
                values={":beat": {"N": str(member.beat)}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return
        self._seen.pop(member.owner, None)
        log.info("dead container removed from the roster", extra={"from": member.owner})

    def _update(
        self,
        expression: str,
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=_KEY,
            UpdateExpression=expression,
            ExpressionAttributeNames={"#m": "members", **(names or {})},
            **({"ConditionExpression": condition} if condition else {}),
            **({"ExpressionAttributeValues": values} if values else {}),
        )
