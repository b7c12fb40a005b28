"""One container alone on the input queue (LEASE_TABLE unset): it reads the queue and runs every command
it receives. `supervisor/sharing/claims.py` `Claims` (LEASE_TABLE set) extends it for several containers.
Both make the input queue's poller, which a full container (no free worker slot) slows down, so that one
with a free slot receives the next command first."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from supervisor.contract.config import Config
from supervisor.delivery import Delivery
from supervisor.events import LoopEvent
from supervisor.poller import RECEIVE_BATCH, Poller
from supervisor.queues import Queues, Received
from supervisor.routing import Router
from supervisor.visibility import VisibilityKeeper

# A command that waits rather than fails (its workspace's lease moving, an owner's inbox unreachable)
# goes back on its queue as a new copy this much later.
REQUEUE_SECONDS = 2


class SharingUnavailable(RuntimeError):
    """The lease table or our inbox cannot be used at start: a configuration or permission problem."""


@dataclass(frozen=True)
class Admit:
    """Run it here. `fence` goes to the worker, which checks it before it writes (steps/fence.py).
    `newest`: the newest command admitted in the workspace by the container that held it before,
    (first sent ms, command id): one sent before it is superseded here too."""

    fence: dict[str, Any]
    warnings: tuple[str, ...] = ()
    newest: tuple[int, str] | None = None


class SingleContainer:
    # Whether the input poller waits for the loop's decision on a batch before the next receive: only
    # where a receive takes just what can start here (`batch_size`), since the rest would be put back.
    AWAITS_DECISIONS = False

    def __init__(
        self,
        config: Config,
        queues: Queues,
        delivery: Delivery,
        visibility: VisibilityKeeper,
        post: Callable[[LoopEvent], None],
    ):
        self.config, self.queues, self.delivery, self.visibility, self.post = config, queues, delivery, visibility, post
        self.busy: frozenset[str] = frozenset()  # workspaces with work here (`publish`)
        self.free_slots = config.max_workers  # worker slots free (`publish`)
        self.slot_freed = threading.Event()  # wakes a paused input poller

    def publish(self, router: Router) -> None:
        """The loop's state the other threads may read, set by the loop every tick."""
        was_full, self.busy, self.free_slots = self.full, router.workspace_names(), router.free_slots()
        if was_full and not self.full:
            self.slot_freed.set()

    @property
    def full(self) -> bool:
        return self.free_slots == 0

    def pollers(self, stop: threading.Event) -> list[Poller]:
        """The input queue's poller, and INTERRUPT_QUEUE_URL's when set (a standard queue of interrupt
        messages beside a FIFO input: supervisor/contract/interrupts.py)."""
        pollers = [self.input_poller(stop)]
        if self.config.interrupt_queue_url:
            url = self.config.interrupt_queue_url
            pollers.append(Poller(self.queues, self.visibility, self.delivery, self.post, stop, queue_url=url))
        return pollers

    def input_poller(self, stop: threading.Event) -> Poller:
        return Poller(
            self.queues,
            self.visibility,
            self.delivery,
            self.post,
            stop,
            pause_for=self.pause_seconds,
            batch_for=self.batch_size,
            await_decisions=self.AWAITS_DECISIONS,
            slot_freed=self.slot_freed,
        )

    def pause_seconds(self) -> float:
        """Seconds between the input poller's receives (0: at once). One container alone must take every
        command, full or not (waiting ones wait here)."""
        return 0.0

    def batch_size(self) -> int:
        """Messages one receive takes: all SQS gives (10), since commands that cannot start yet wait here."""
        return RECEIVE_BATCH

    def start(self) -> None:
        pass

    def stop_receiving(self) -> None:
        pass

    def close(self, timeout: float) -> None:
        pass

    def relay(self, workspace: str, message: Received) -> None:
        """An interrupt message for a workspace with no work here: alone on the queue, nothing to do."""
        self.delivery.delete(message)

    def admit(
        self,
        workspace: str,
        message: Received,
        *,
        here: bool,
        free: bool,
        then: Callable[[Admit | None], None],
        command_id: str = "",
    ) -> None:
        """Whether the command runs here (`then` gets an `Admit`) or not (None: the message went elsewhere).
        Alone on the queue, every command runs here, decided at once."""
        then(Admit({}))
