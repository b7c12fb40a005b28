"""Which command runs where: at most one per workspace, at most MAX_WORKERS in all, and the newest
command of a workspace superseding an older one that has not started. Pure bookkeeping: no I/O, no
processes, no clock; the loop acts on what it returns.

"Newer" is the order the commands were sent in (SQS's SentTimestamp, carried by every copy we send
again), not the order they reach us: a command put back or forwarded reaches us after commands sent
later, and must neither interrupt them nor run after them. Commands sent in the same millisecond, or
of unknown send time, go by arrival.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from supervisor.run import Run

Workspace = tuple[str, str, str]
# Workspaces whose newest started command is remembered (to know a late arrival is older); the oldest
# entries go first beyond this many.
STARTED_REMEMBERED = 10_000


@dataclass(frozen=True)
class Arrival:
    superseded: Run | None  # an older command of the workspace that never started: answered INTERRUPTED
    interrupt: Run | None  # the workspace's running command, to be interrupted
    newer: str = ""  # the command id that supersedes or interrupts


@dataclass
class Router:
    max_workers: int
    running: dict[Workspace, Run] = field(default_factory=dict)  # at most one per workspace, any phase
    waiting: dict[Workspace, Run] = field(default_factory=dict)  # the newest unstarted command per workspace
    # The newest command started here per workspace: (first sent, ms; its command id).
    started: dict[Workspace, tuple[int, str]] = field(default_factory=dict)

    def arrive(self, run: Run) -> Arrival:
        """A command admitted here: it waits, superseding an older waiting one and interrupting the running
        one; or, sent before a command of the workspace that waits, runs or ran here, it is superseded."""
        sent, newest = run.message.first_sent_ms, self._newest_sent(run.workspace)
        if sent and newest is not None and sent < newest[0]:
            return Arrival(run, None, newest[1])
        older = self.waiting.pop(run.workspace, None)
        self.waiting[run.workspace] = run
        active = self.running.get(run.workspace)
        newer = run.command.command_id
        return Arrival(older, active if active is not None and active.phase == "running" else None, newer)

    def _newest_sent(self, workspace: Workspace) -> tuple[int, str] | None:
        known = [self.started[workspace]] if workspace in self.started else []
        for run in (self.waiting.get(workspace), self.running.get(workspace)):
            if run is not None and run.message.first_sent_ms:
                known.append((run.message.first_sent_ms, run.command.command_id))
        return max(known, default=None)

    def _remember_start(self, run: Run) -> None:
        self.learn_started(run.workspace, (run.message.first_sent_ms, run.command.command_id))

    def learn_started(self, workspace: Workspace, newest: tuple[int, str]) -> None:
        """A command of the workspace started (here, or where its previous owner ran it): (first sent ms,
        command id). Kept when it is the newest known."""
        sent = newest[0]
        if sent and sent >= self.started.get(workspace, (0, ""))[0]:
            self.started.pop(workspace, None)  # re-inserted last: the oldest entries go first
            self.started[workspace] = newest
            while len(self.started) > STARTED_REMEMBERED:
                del self.started[next(iter(self.started))]

    def ready(self) -> list[Run]:
        """Waiting commands that start now, oldest first: their workspace is free and a worker slot open."""
        started = []
        for workspace in list(self.waiting):
            if len(self.running) >= self.max_workers:
                break
            if workspace not in self.running:
                run = self.waiting.pop(workspace)
                self.running[workspace] = run
                self._remember_start(run)
                started.append(run)
        return started

    def finished(self, run: Run) -> None:
        if self.running.get(run.workspace) is run:
            del self.running[run.workspace]

    def holding(self, message_id: str) -> Run | None:
        """The run of a message we already hold (SQS delivered it again), if any."""
        for run in [*self.running.values(), *self.waiting.values()]:
            if run.message.message_id == message_id:
                return run
        return None

    def holding_command(self, command_id: str) -> Run | None:
        """The run of this command, whatever message brought it (a forward, a put-back and a resend are new
        messages of the same command), if any."""
        for run in [*self.running.values(), *self.waiting.values()]:
            if run.command.command_id == command_id:
                return run
        return None

    def take_waiting(self, workspace_names: tuple[str, ...] | None = None) -> list[Run]:
        """The commands not started yet (of those workspaces, or all), removed: they are handed back."""
        taken = [r for r in self.waiting.values() if workspace_names is None or r.workspace_name in workspace_names]
        for run in taken:
            del self.waiting[run.workspace]
        return taken

    def has_free_slot(self, admitting: Iterable[Workspace] = ()) -> bool:
        """A worker slot is open for one more workspace. Workspaces that wait for a slot, and those of
        commands being admitted (`admitting`: their lease may be taken as we speak), count as taking one."""
        return len({*self.running, *self.waiting, *admitting}) < self.max_workers

    def free_slots(self) -> int:
        return max(0, self.max_workers - len(self.running))

    def workspace_names(self) -> frozenset[str]:
        """Every workspace with a command here, running or waiting."""
        return frozenset(run.workspace_name for run in [*self.running.values(), *self.waiting.values()])
