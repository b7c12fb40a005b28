"""The spare workers kept ahead of need: a failed start of a spare never costs the job its worker, and an
interrupt's two workers in a row (the one committing the interrupted work, then the newer command's) are
both spares started before the interrupt, never one still starting (issue 21: interrupt latency)."""

from __future__ import annotations

from typing import ClassVar

import pytest

from supervisor import worker_process
from supervisor.worker_process import SpareWorkers


class FakeWorker:
    """Stands in for WorkerProcess: started ones are counted; `fail` makes the next start raise."""

    started: ClassVar[list[FakeWorker]] = []
    fail: ClassVar[bool] = False

    def __init__(self) -> None:
        if FakeWorker.fail:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        FakeWorker.started.append(self)
        self.pid = len(FakeWorker.started)
        self.dead = False

    def is_idle_and_alive(self) -> bool:
        return not self.dead


@pytest.fixture
def spares(monkeypatch):
    FakeWorker.started, FakeWorker.fail = [], False
    monkeypatch.setattr(worker_process, "WorkerProcess", FakeWorker)
    return SpareWorkers()


def take_for_a_job(spares: SpareWorkers) -> FakeWorker:
    """What WorkerPool.start does: take a worker, hand it its job, then start spares."""
    worker = spares.take()
    spares.replenish()
    return worker  # type: ignore[return-value]


def test_an_interrupts_two_workers_were_both_started_before_it(spares):
    take_for_a_job(spares)  # the command that is interrupted later; spares start behind it
    started_before = spares.pids()
    assert len(started_before) == 2
    finisher = take_for_a_job(spares)  # commits the interrupted work, at once
    newer = take_for_a_job(spares)  # the newer command, when the finisher exits
    # With one spare, `newer` was the worker the finisher's take had just started (still importing).
    assert {finisher.pid, newer.pid} == started_before
    assert len(spares.pids()) == 2 and not spares.pids() & started_before


def test_the_oldest_spare_goes_first_and_a_dead_one_is_passed_over(spares):
    take_for_a_job(spares)
    oldest, younger = FakeWorker.started[1:3]
    assert spares.take() is oldest  # the likeliest to be done starting
    spares.replenish()
    younger.dead = True
    assert spares.take() is FakeWorker.started[3]


def test_a_healthy_spare_is_handed_out_even_when_the_next_cannot_start(spares):
    first = take_for_a_job(spares)  # no spare yet: one for the job, two ahead
    assert len(FakeWorker.started) == 3
    FakeWorker.fail = True  # EAGAIN from fork: the spares started before still serve the jobs
    second, third = take_for_a_job(spares), take_for_a_job(spares)
    assert [second, third] == FakeWorker.started[1:3] and first not in (second, third)
    FakeWorker.fail = False
    fourth = take_for_a_job(spares)  # no spare was left: a new one for the job, and two ahead again
    assert fourth is FakeWorker.started[3] and len(FakeWorker.started) == 6


def test_no_worker_at_all_is_an_error_the_caller_sees(spares):
    FakeWorker.fail = True
    with pytest.raises(OSError):
        spares.take()
