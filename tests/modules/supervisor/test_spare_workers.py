"""The spare worker kept ahead of need: a failed start of the next spare never costs the job its worker."""

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

    def is_idle_and_alive(self) -> bool:
        return True


@pytest.fixture
def spares(monkeypatch):
    FakeWorker.started, FakeWorker.fail = [], False
    monkeypatch.setattr(worker_process, "WorkerProcess", FakeWorker)
    return SpareWorkers()


def test_a_healthy_spare_is_handed_out_even_when_the_next_cannot_start(spares):
    first = spares.take()  # no spare yet: one for the job, one ahead
    assert len(FakeWorker.started) == 2
    FakeWorker.fail = True  # EAGAIN from fork: the spare started before still serves this job
    second = spares.take()
    assert second is FakeWorker.started[1] and second is not first
    FakeWorker.fail = False
    third = spares.take()  # no spare was left: a new one for the job, and one ahead again
    assert third is FakeWorker.started[2] and len(FakeWorker.started) == 4


def test_no_worker_at_all_is_an_error_the_caller_sees(spares):
    FakeWorker.fail = True
    with pytest.raises(OSError):
        spares.take()
