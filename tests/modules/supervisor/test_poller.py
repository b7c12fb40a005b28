"""The poller (supervisor/poller.py): backpressure, and what it posts."""

from __future__ import annotations

import threading
import time

from supervisor.delivery import Delivery
from supervisor.events import MessageReceived
from supervisor.memory_queues import MemoryQueues
from supervisor.poller import MAX_HELD, Poller
from supervisor.visibility import VisibilityKeeper


def test_the_poller_takes_no_more_while_the_loop_holds_a_backlog():
    queues = MemoryQueues()
    leases = VisibilityKeeper(queues)  # type: ignore[arg-type]
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
    leases = VisibilityKeeper(queues)  # type: ignore[arg-type]
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


def test_a_poller_that_awaits_decisions_receives_again_only_once_the_loop_decided_on_the_last_batch():
    queues = MemoryQueues()
    leases = VisibilityKeeper(queues)  # type: ignore[arg-type]
    posted: list[MessageReceived] = []
    stop = threading.Event()
    poller = Poller(
        queues,  # type: ignore[arg-type]
        leases,
        Delivery(queues, leases),  # type: ignore[arg-type]
        posted.append,  # type: ignore[arg-type]
        stop,
        batch_for=lambda: 1,
        await_decisions=True,
    )
    for n in range(3):
        queues.send({"n": n})
    poller.start()
    deadline = time.monotonic() + 5
    while not posted and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # room for a second receive, were the poller not waiting
    assert len(posted) == 1  # one slot free, one message: the others stay in SQS for another container
    posted[0].decided.set()  # the loop has run it (or put it back): now the next
    while len(posted) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    assert len(posted) == 2
    stop.set()
    posted[1].decided.set()
    poller.join(5)
    assert not poller.is_alive()
