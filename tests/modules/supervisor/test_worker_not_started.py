"""No worker process could be had (fork's EAGAIN, EMFILE): the command is retried like one whose worker died
at once, and answered once, never dead-lettered as invalid nor left holding its slot with no worker."""

from __future__ import annotations

from typing import Any

from test_loop import FakePool, answers, command, deliver, world  # noqa: F401 (the fixture)

from supervisor.contract.command import parse_command
from supervisor.contract.exit_codes import WorkerExit
from supervisor.events import MessageReceived, TreeEnded, WorkerExited
from supervisor.memory_queues import MemoryQueues
from supervisor.pool import NotStarted, WorkerPool
from supervisor.run import Run


class ExhaustedPool(FakePool):
    """Does what WorkerPool.start does when no process can be started."""

    def start(self, run: Run, *, mode: str, extra: dict[str, Any] | None = None) -> None:
        self.started.append((run.command.command_id, mode))
        run.worker = NotStarted()  # type: ignore[assignment]
        self.post(WorkerExited(run, run.worker, WorkerExit.NOT_STARTED))


def drain_events(supervisor: Any) -> None:
    while not supervisor.events.empty():
        supervisor.step(0)


def test_a_command_whose_worker_cannot_start_is_retried_then_answered_once(world):  # noqa: F811
    supervisor, queues, clock = world
    supervisor.pool = ExhaustedPool(supervisor.events.put)
    deliver(supervisor, queues, command("a1"))
    for attempt in (1, 2, 3):
        drain_events(supervisor)
        assert not supervisor.router.running and not supervisor.router.waiting  # no run without a worker
        if attempt < 3:
            assert answers(queues) == [] and queues.responses[-1]["status"] == "retrying"
            assert "no worker process could be started" in queues.responses[-1]["reason"]
            clock.now += 10 * attempt + 1
            for message in queues.receive(wait_seconds=0):
                supervisor.dispatch(MessageReceived(message))
    assert answers(queues) == [("a1", "WORKER_DIED")]  # not INVALID_MESSAGE: the command was valid
    assert supervisor.pool.started == [("a1", "run")] * 3


def test_the_real_pool_reports_a_failed_start_and_an_interrupt_of_it_ends_at_once(monkeypatch, tmp_path):
    posted: list[Any] = []
    pool = WorkerPool(posted.append)

    def exhausted() -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(pool.spares, "take", exhausted)
    queues = MemoryQueues(lambda: 0.0)
    queues.send(command("a1"))
    message = queues.receive(wait_seconds=0)[0]
    run = Run(parse_command(message.body, "/srv/site.git"), message)
    run.move_to("running")
    pool.start(run, mode="run")
    assert isinstance(run.worker, NotStarted)
    assert [(type(e).__name__, getattr(e, "code", None)) for e in posted] == [("WorkerExited", WorkerExit.NOT_STARTED)]
    pool.track([run])  # no process to look at: nothing happens
    run.move_to("interrupting")
    assert pool.interrupt(run, grace=1.0) == 0
    assert isinstance(posted[-1], TreeEnded) and posted[-1].signals == {}
