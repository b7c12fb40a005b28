"""The poller (supervisor/poller.py): backpressure, and what it posts."""

from __future__ import annotations

import threading

from supervisor.delivery import Delivery
from supervisor.events import MessageReceived
from supervisor.leases import Leases
from supervisor.memory_queues import MemoryQueues
from supervisor.poller import MAX_HELD, Poller


def test_the_poller_takes_no_more_while_the_loop_holds_a_backlog():
    queues = MemoryQueues()
    leases = Leases(queues)  # type: ignore[arg-type]
    posted: list[object] = []
    poller = Poller(queues, leases, Delivery(queues, leases), posted.append, threading.Event())  # type: ignore[arg-type]
    for n in range(MAX_HELD + 5):
        queues.send({"n": n})
    taken = 0
    while (got := poller.poll_once()) is not None:
        taken += got
    assert taken == MAX_HELD and len(leases.held()) == MAX_HELD and len(queues.remaining()) == MAX_HELD + 5
    assert all(isinstance(event, MessageReceived) for event in posted)
    leases.release(posted[0].message)  # the loop answered one: room for more
    assert poller.poll_once() == 5
