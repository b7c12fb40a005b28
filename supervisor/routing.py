"""Which command runs where: at most one per workspace, at most MAX_WORKERS in all, and the newest
command of a workspace superseding an older one that has not started. Pure bookkeeping: no I/O, no
processes, no clock; the loop acts on what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from supervisor.run import Run

Workspace = tuple[str, str, str]


@dataclass(frozen=True)
class Arrival:
    superseded: Run | None  # an older command of the workspace that never started: answered INTERRUPTED
    interrupt: Run | None  # the workspace's running command, to be interrupted


@dataclass
class Router:
    max_workers: int
    running: dict[Workspace, Run] = field(default_factory=dict)  # at most one per workspace, any phase
    waiting: dict[Workspace, Run] = field(default_factory=dict)  # the newest unstarted command per workspace

    def arrive(self, run: Run) -> Arrival:
        older = self.waiting.pop(run.workspace, None)
        self.waiting[run.workspace] = run
        active = self.running.get(run.workspace)
        return Arrival(older, active if active is not None and active.phase == "running" else None)

    def ready(self) -> list[Run]:
        """Waiting commands that start now, oldest first: their workspace is free and a worker slot open."""
        started = []
        for workspace in list(self.waiting):
            if len(self.running) >= self.max_workers:
                break
            if workspace not in self.running:
                run = self.waiting.pop(workspace)
                self.running[workspace] = run
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

    def has_free_slot(self) -> bool:
        return len(self.running) < self.max_workers

    def free_slots(self) -> int:
        return max(0, self.max_workers - len(self.running))

    def workspace_names(self) -> frozenset[str]:
        """Every workspace with a command here, running or waiting."""
        return frozenset(run.workspace_name for run in [*self.running.values(), *self.waiting.values()])
