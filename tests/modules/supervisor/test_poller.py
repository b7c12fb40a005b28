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


def test_failed_receives_back_off_longer_each_time_and_reset_on_success():
    queues = MemoryQueues()
    leases = Leases(queues)  # type: ignore[arg-type]
    poller = Poller(queues, leases, Delivery(queues, leases), [].append, threading.Event())  # type: ignore[arg-type]
    real_receive = queues.receive
    queues.receive = lambda **_: (_ for _ in ()).throw(RuntimeError("SQS down"))  # type: ignore[method-assign]
    waits = []
    for _ in range(7):
        assert poller.poll_once() is None
        waits.append(poller.backoff())
    assert waits == [1, 2, 4, 8, 16, 16, 16]
    queues.receive = real_receive  # type: ignore[method-assign]
    assert poller.poll_once() == 0 and poller.backoff() == 1
