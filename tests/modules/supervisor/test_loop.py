"""The supervisor's loop from scripted event histories: no process, no moto, no network.

An in-memory queue stands in for SQS and a fake pool for the worker processes; each test feeds the
loop the events its threads would post (a worker's exit, a tree ended) and reads what it decided.
"""

from __future__ import annotations

import json
import signal
import threading
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from supervisor.contract.config import load_config
from supervisor.contract.exit_codes import WorkerExit
from supervisor.events import MessageReceived, TreeEnded, WorkerExited, WorkerReported
from supervisor.loop import Supervisor
from supervisor.memory_queues import MemoryQueues
from supervisor.run import PhaseError, Run


@dataclass
class FakeWorker:
    pid: int
    result: dict[str, Any] | None = None


@dataclass
class FakePool:
    """Stands in for supervisor.pool.WorkerPool: records what the loop asked of it."""

    post: Any
    started: list[tuple[str, str]] = field(default_factory=list)  # (commandId, mode)
    interrupted: list[str] = field(default_factory=list)
    unwaited: set[int] = field(default_factory=set)
    next_pid: int = 1000

    def start(self, run: Run, *, mode: str, extra: dict[str, Any] | None = None) -> None:
        self.next_pid += 1
        run.worker = FakeWorker(self.next_pid)  # type: ignore[assignment]
        self.started.append((run.command.command_id, mode))

    def interrupt(self, run: Run, *, grace: float) -> int:
        self.interrupted.append(run.command.command_id)
        return 3

    def forget(self, worker: Any) -> None: ...
    def end_leftovers(self, run: Run) -> list[int]:
        return []

    def track(self, runs: list[Run]) -> None: ...
    def close(self) -> None: ...


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(tmp_path):
    env = {
        "INPUT_QUEUE_URL": "http://memory/input",
        "OUTPUT_QUEUE_URL": "http://memory/output",
        "DLQ_URL": "http://memory/dlq",
        "WORKSPACE_PATH": str(tmp_path),
        "REPO_URL": "/srv/site.git",
        "MAX_WORKERS": "2",
        "SHUTDOWN_GRACE_SECONDS": "25",
        "INTERRUPT_GRACE_SECONDS": "5",
        "PROGRESS_EVENTS": "true",
        "LOG_FORMAT": "json",
    }
    clock = Clock()
    queues = MemoryQueues(clock)
    supervisor = Supervisor(load_config(env), queues, pool=FakePool, clock=clock)  # type: ignore[arg-type]
    return supervisor, queues, clock


def command(command_id: str, *, thread: str = "t", client: str = "acme", **extra: Any) -> dict[str, Any]:
    return {
        "instruction": "Do it",
        "commandId": command_id,
        "chatThreadId": thread,
        "clientId": client,
        "userId": "u1",
        **extra,
    }


def deliver(supervisor: Supervisor, queues: MemoryQueues, *bodies: dict[str, Any] | str) -> None:
    """What the poller does: send, receive, hold, post; then the loop takes every event."""
    for body in bodies:
        queues.send(body)
    for message in queues.receive(max_messages=10, wait_seconds=0):
        supervisor.visibility.hold(message)
        supervisor.dispatch(MessageReceived(message))


def run_of(supervisor: Supervisor, command_id: str) -> Run:
    runs = [*supervisor.router.running.values(), *supervisor.router.waiting.values()]
    return next(run for run in runs if run.command.command_id == command_id)


def finish(supervisor: Supervisor, command_id: str, *, success: bool = True, code: int = 0) -> None:
    run = run_of(supervisor, command_id)
    worker = run.worker
    assert worker is not None
    worker.result = (
        {"type": "response", "commandId": command_id, "success": success, "errorCode": None, "commit": None}
        if code == 0
        else None
    )
    supervisor.dispatch(WorkerExited(run, worker, code))  # type: ignore[arg-type]


def answers(queues: MemoryQueues) -> list[tuple[str, Any]]:
    return [(r["commandId"], r.get("errorCode")) for r in queues.responses if r["type"] == "response"]


def test_one_worker_per_workspace_and_at_most_max_workers(world):
    supervisor, queues, _ = world
    deliver(supervisor, queues, command("a1"), command("b1", client="beta"), command("c1", client="gamma"))
    assert supervisor.pool.started == [("a1", "run"), ("b1", "run")]  # MAX_WORKERS=2: c1 waits
    finish(supervisor, "a1")
    assert supervisor.pool.started[-1] == ("c1", "run")
    assert answers(queues) == [("a1", None)] and len(queues.remaining()) == 2  # a1 deleted after its answer


def test_a_newer_command_interrupts_the_running_one_and_supersedes_a_waiting_one(world):
    supervisor, queues, _ = world
    deliver(supervisor, queues, command("a1"))
    deliver(supervisor, queues, command("a2", thread="t2"))
    assert supervisor.pool.interrupted == ["a1"] and run_of(supervisor, "a1").phase == "interrupting"
    deliver(supervisor, queues, command("a3", thread="t3"))  # a2 never started: answered at once
    assert answers(queues) == [("a2", "INTERRUPTED")]
    assert supervisor.pool.interrupted == ["a1"]  # interrupted once, not again

    a1 = run_of(supervisor, "a1")
    supervisor.dispatch(TreeEnded(a1, {"SIGINT": 3}))
    assert a1.phase == "finishing" and supervisor.pool.started[-1] == ("a1", "interrupted")
    finish(supervisor, "a1")  # the finishing worker's result: the WIP commit and push
    assert answers(queues)[-1] == ("a1", None) and queues.responses[-1]["interrupted"] is True
    assert supervisor.pool.started[-1] == ("a3", "run")


def sent_then_first_put_back(supervisor: Supervisor, queues: MemoryQueues, *bodies: dict[str, Any]) -> None:
    """Send the commands; the first is received and put back as a new copy (as a full container does),
    so the others are now ahead of it in the queue."""
    for body in bodies:
        queues.send(body)
    (message,) = queues.receive(wait_seconds=0)
    supervisor.delivery.requeue(message, 0)


def test_a_command_put_back_and_received_after_a_newer_one_is_superseded_not_an_interrupt(world):
    supervisor, queues, _ = world
    sent_then_first_put_back(supervisor, queues, command("a1"), command("a2", thread="t2"))
    deliver(supervisor, queues)  # a2, then a1's copy
    assert supervisor.pool.started == [("a2", "run")] and supervisor.pool.interrupted == []
    (response,) = [r for r in queues.responses if r["type"] == "response"]
    assert response["commandId"] == "a1" and response["errorCode"] == "INTERRUPTED"
    assert "(a2), sent after it" in response["error"]
    finish(supervisor, "a2")
    assert answers(queues) == [("a1", "INTERRUPTED"), ("a2", None)] and queues.remaining() == []


def test_an_older_command_arriving_after_a_newer_one_ran_does_not_run_after_it(world):
    supervisor, queues, _ = world
    sent_then_first_put_back(supervisor, queues, command("a1"), command("a2", thread="t2"))
    messages = queues.receive(max_messages=10, wait_seconds=0)
    assert [json.loads(m.body)["commandId"] for m in messages] == ["a2", "a1"]
    supervisor.dispatch(MessageReceived(messages[0]))
    finish(supervisor, "a2")  # done before a1's copy is read
    supervisor.dispatch(MessageReceived(messages[1]))
    assert supervisor.pool.started == [("a2", "run")]
    assert answers(queues) == [("a2", None), ("a1", "INTERRUPTED")]
    deliver(supervisor, queues, command("a3"))  # sent later than both: runs as usual
    assert supervisor.pool.started[-1] == ("a3", "run")


def test_a_command_sent_before_the_newest_one_the_workspaces_last_owner_admitted_is_superseded(world, monkeypatch):
    """Several containers: the lease item tells the next owner the newest command admitted there (Admit.newest);
    a command sent before it, received here later, must not run after it."""
    supervisor, queues, _ = world
    admit_here = supervisor.intake.sharing.admit

    def admit_after_a_takeover(workspace, message, *, then, **kwargs):
        newest = (message.first_sent_ms + 1, "b7")  # run by the container that held the workspace before us
        admit_here(workspace, message, then=lambda admitted: then(replace(admitted, newest=newest)), **kwargs)

    monkeypatch.setattr(supervisor.intake.sharing, "admit", admit_after_a_takeover)
    deliver(supervisor, queues, command("a1"))
    assert supervisor.pool.started == [] and answers(queues) == [("a1", "INTERRUPTED")]
    assert "(b7), sent after it" in queues.responses[-1]["error"]
    monkeypatch.setattr(supervisor.intake.sharing, "admit", admit_here)
    deliver(supervisor, queues, command("a2"))  # not sent before b7: runs
    assert supervisor.pool.started == [("a2", "run")]


def test_commands_admitted_before_the_first_is_decided_claim_no_more_workspaces_than_slots(world, monkeypatch):
    """Several containers decide on another thread: a burst for other workspaces, received before the first
    decision comes back, must not be admitted as if every slot were still free (each would take a lease,
    and the other containers would forward those workspaces' commands here to wait)."""
    supervisor, queues, _ = world  # MAX_WORKERS=2
    asked: list[tuple[str, bool, bool]] = []
    decisions: list[Any] = []
    admit_here = supervisor.intake.sharing.admit

    def admit_later(workspace, message, *, here, free, then, **kwargs):
        asked.append((json.loads(message.body)["commandId"], here, free))
        decisions.append(lambda: admit_here(workspace, message, here=here, free=free, then=then, **kwargs))

    monkeypatch.setattr(supervisor.intake.sharing, "admit", admit_later)
    bodies = [command("a1"), command("b1", client="beta"), command("c1", client="gamma"), command("a2", thread="t2")]
    deliver(supervisor, queues, *bodies)
    assert asked == [("a1", False, True), ("b1", False, True), ("c1", False, False), ("a2", True, False)]
    for decide in decisions:
        decide()
    assert supervisor.pool.started == [("a1", "run"), ("b1", "run")]


def test_a_worker_that_dies_is_retried_and_answered_once_on_its_last_try(world):
    """One final response per command: WORKER_DIED only when the message will not be tried again."""
    supervisor, queues, clock = world
    deliver(supervisor, queues, command("a1"))
    for attempt in (1, 2, 3):  # no redrive policy on this queue: three tries
        finish(supervisor, "a1", code=-9)
        if attempt < 3:
            assert answers(queues) == [] and queues.in_flight() == ["m-1"]
            assert queues.responses[-1]["status"] == "retrying" and "signal 9" in queues.responses[-1]["reason"]
            clock.now += 10 * attempt + 1  # visible again after 10 s x receive count
            for message in queues.receive(wait_seconds=0):
                supervisor.dispatch(MessageReceived(message))
    assert answers(queues) == [("a1", "WORKER_DIED")]
    assert queues.remaining() == [] and len(queues.dead_letters) == 1  # copied to DLQ_URL, not tried again


def test_deliveries_lost_to_a_dead_supervisor_are_not_counted_as_tries(world):
    supervisor, queues, clock = world
    queues.send(command("a1"))
    for _ in range(3):  # three supervisors died holding it: received, never answered
        queues.receive(wait_seconds=0)
        clock.now += 31
    for message in queues.receive(wait_seconds=0):
        supervisor.dispatch(MessageReceived(message))
    finish(supervisor, "a1", code=-9)  # the first worker that died on it, on the fourth delivery
    assert answers(queues) == [] and queues.responses[-1]["status"] == "retrying" and queues.dead_letters == []


def test_the_redrive_policy_sets_how_many_tries_a_command_gets(world):
    supervisor, queues, _ = world
    queues.max_receives = 1
    deliver(supervisor, queues, command("a1"))
    finish(supervisor, "a1", code=-9)
    assert answers(queues) == [("a1", "WORKER_DIED")] and not supervisor.router.running


def test_a_finished_result_is_never_lost_to_a_slow_progress_send(world):
    """The race of a reader blocked on SQS: events go through the loop, the result stays on the worker."""
    supervisor, queues, _ = world
    deliver(supervisor, queues, command("a1"))
    run = run_of(supervisor, "a1")
    for status in ("started", "finished"):
        supervisor.dispatch(WorkerReported(run, run.worker.pid, {"event": "step", "step": "agent", "status": status}))
    finish(supervisor, "a1")
    assert [(b["type"], b.get("status")) for b in queues.responses] == [
        ("progress", "started"),
        ("progress", "finished"),
        ("response", None),
    ]


def test_events_of_a_replaced_worker_are_ignored(world):
    supervisor, queues, _ = world
    deliver(supervisor, queues, command("a1"))
    run = run_of(supervisor, "a1")
    supervisor.dispatch(WorkerReported(run, 4242, {"event": "step", "step": "agent", "status": "started"}))
    supervisor.dispatch(WorkerExited(run, FakeWorker(4242, {"success": True}), 0))  # type: ignore[arg-type]
    assert queues.responses == [] and run.phase == "running" and run.step is None


def test_tool_progress_is_coalesced_by_the_loop_clock(world):
    supervisor, queues, clock = world
    deliver(supervisor, queues, command("a1"))
    run = run_of(supervisor, "a1")

    def tool(n: int) -> None:
        body = {"event": "progress", "step": "agent", "status": "tool", "tool": "Edit", "target": f"f{n}"}
        supervisor.dispatch(WorkerReported(run, run.worker.pid, body))

    tool(1)
    tool(2)
    tool(3)
    assert [b["target"] for b in queues.responses] == ["f1"]
    clock.now += 1.0
    supervisor.step(0)  # the tick sends the newest held event
    assert [b["target"] for b in queues.responses] == ["f1", "f3"]


def test_warm_stop_hands_back_waiting_work_then_interrupts_running_work_at_its_deadline(world):
    supervisor, queues, clock = world
    deliver(supervisor, queues, command("a1"), command("b1", client="beta"), command("c1", client="gamma"))
    supervisor.on_signal(15)
    supervisor.step(0)
    assert supervisor.shutdown.stopping and not supervisor.router.waiting
    assert "m-3" not in queues.in_flight()  # c1 never started: handed back at once
    finish(supervisor, "b1")  # running work may still finish and be answered
    clock.now += 16.9  # 25 - 5 - 3: not yet
    supervisor._next_tick = 0
    supervisor.step(0)
    assert supervisor.pool.interrupted == []
    clock.now += 0.2
    supervisor._next_tick = 0
    supervisor.step(0)
    assert supervisor.pool.interrupted == ["a1"]
    a1 = run_of(supervisor, "a1")
    supervisor.dispatch(TreeEnded(a1, {"SIGINT": 3}))
    finish(supervisor, "a1")  # WIP committed; no response, the message goes back
    assert answers(queues) == [("b1", None)] and "m-1" not in queues.in_flight() and supervisor.finished()


def test_a_second_signal_ends_everything_at_once_and_hands_messages_back(world):
    supervisor, queues, _ = world
    deliver(supervisor, queues, command("a1"))
    supervisor.on_signal(15)
    supervisor.on_signal(2)
    supervisor.step(0)
    assert supervisor.shutdown.forced and supervisor.pool.interrupted == ["a1"]
    supervisor.dispatch(TreeEnded(run_of(supervisor, "a1"), {"SIGINT": 3}))
    assert supervisor.finished() and queues.in_flight() == [] and answers(queues) == []


def test_invalid_messages_are_answered_and_dead_lettered(world):
    supervisor, queues, _ = world
    deliver(supervisor, queues, command("bad", userId="Not Valid"), "not json at all")
    assert answers(queues) == [("bad", "INVALID_MESSAGE")]
    assert len(queues.dead_letters) == 2 and queues.remaining() == []


def test_a_repository_inside_the_workspaces_is_refused_as_invalid(world, tmp_path):
    """One client's command naming another's repository on the shared volume: never cloned nor pushed to."""
    supervisor, queues, _ = world
    other = f"{tmp_path}/globex/u1/.site.git"
    deliver(
        supervisor,
        queues,
        command("theft", repoUrl=other),
        command("theft2", repoUrl=f"file://{tmp_path}/../{tmp_path.name}/x"),
    )
    assert answers(queues) == [("theft", "INVALID_MESSAGE"), ("theft2", "INVALID_MESSAGE")]
    assert supervisor.pool.started == [] and len(queues.dead_letters) == 2
    reasons = [r["error"] for r in queues.responses if r["type"] == "response"]
    assert all("inside WORKSPACE_PATH" in reason for reason in reasons)


def test_a_message_delivered_again_while_held_keeps_its_newest_receipt(world):
    supervisor, queues, clock = world
    deliver(supervisor, queues, command("a1"))
    clock.now += 31  # our lease lapsed (say the renewal failed): SQS hands it out again
    for message in queues.receive(wait_seconds=0):
        supervisor.dispatch(MessageReceived(message))
    assert supervisor.pool.started == [("a1", "run")]  # not run twice
    finish(supervisor, "a1")
    assert queues.remaining() == []  # deleted with the newest receipt


def test_phases_change_only_along_the_allowed_transitions(world):
    supervisor, queues, _ = world
    deliver(supervisor, queues, command("a1"))
    run = run_of(supervisor, "a1")
    with pytest.raises(PhaseError):
        run.move_to("finishing")
    run.move_to("interrupting")
    with pytest.raises(PhaseError):
        run.move_to("running")


def test_the_status_report_lists_workers_and_waiting_commands(world):
    from supervisor.status import status_report

    supervisor, queues, _ = world
    deliver(supervisor, queues, command("a1"), command("a2", thread="t2"))
    report = status_report(supervisor)
    assert [w["commandId"] for w in report["workers"]] == ["a1"] and report["waiting"][0]["commandId"] == "a2"
    assert json.loads(json.dumps(report))["maxWorkers"] == 2


def test_idle_exit_stops_after_that_long_with_nothing_received_or_running(tmp_path):
    clock = Clock()
    env = {
        "INPUT_QUEUE_URL": "http://memory/input",
        "WORKSPACE_PATH": str(tmp_path),
        "REPO_URL": "/srv/site.git",
        "IDLE_EXIT_SECONDS": "60",
        "LOG_FORMAT": "json",
    }
    queues = MemoryQueues(clock)
    supervisor = Supervisor(load_config(env), queues, pool=FakePool, clock=clock)  # type: ignore[arg-type]

    def tick(seconds: float) -> None:
        clock.now += seconds
        supervisor._next_tick = 0
        supervisor.step(0)

    tick(50)
    deliver(supervisor, queues, command("a1"))  # work arrives: the idle clock starts again
    tick(55)
    finish(supervisor, "a1")
    tick(59)  # 59 s since the work ended: not yet
    assert not supervisor.shutdown.stopping
    tick(2)
    assert supervisor.shutdown.stopping and supervisor.finished() and not supervisor.shutdown.forced


def test_without_idle_exit_the_supervisor_waits_for_ever(world):
    supervisor, _, clock = world
    clock.now += 100_000
    supervisor.step(0)
    assert not supervisor.shutdown.stopping


def test_a_message_that_cannot_be_handled_is_dead_lettered_not_held(world, monkeypatch):
    supervisor, queues, _ = world

    def broken(run: Run) -> Any:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(supervisor.router, "arrive", broken)
    deliver(supervisor, queues, command("a1"))
    assert answers(queues) == [("a1", "INVALID_MESSAGE")] and len(queues.dead_letters) == 1
    assert queues.remaining() == [] and supervisor.visibility.held() == []


def test_the_lease_keeper_drops_a_message_it_no_longer_holds(world):
    supervisor, queues, _ = world
    queues.send(command("a1"))
    (message,) = queues.receive(wait_seconds=0)
    supervisor.visibility.hold(message)
    queues.delete(message)  # answered and deleted elsewhere (or received again with a new receipt)
    supervisor.visibility.renew()
    assert supervisor.visibility.held() == []


def test_a_finishing_worker_that_hangs_is_ended_and_the_workspace_freed(world):
    supervisor, queues, clock = world
    deliver(supervisor, queues, command("a1"))
    deliver(supervisor, queues, command("a2", thread="t2"))  # interrupts a1
    a1 = run_of(supervisor, "a1")
    supervisor.dispatch(TreeEnded(a1, {"SIGINT": 3}))
    assert a1.phase == "finishing"
    clock.now += 60 + 120 + 1  # PUSH_RETRY_SECONDS (60) + 120 s: the finisher hangs (a git call that never ends)
    supervisor._next_tick = 0
    supervisor.step(0)
    assert supervisor.pool.interrupted == ["a1", "a1"] and a1.phase == "interrupting"
    supervisor.dispatch(TreeEnded(a1, {"SIGINT": 1, "SIGKILL": 1}))
    assert answers(queues) == [("a1", "INTERRUPTED")] and "took longer" in queues.responses[-1]["error"]
    assert supervisor.pool.started[-1] == ("a2", "run")  # the workspace is free again


def test_a_command_answered_whose_delete_failed_is_not_answered_again(world, monkeypatch):
    supervisor, queues, clock = world
    deliver(supervisor, queues, command("a1"))
    real_delete = queues.delete
    monkeypatch.setattr(queues, "delete", lambda message: (_ for _ in ()).throw(RuntimeError("SQS down")))
    finish(supervisor, "a1")
    assert answers(queues) == [("a1", None)] and queues.remaining() == ["m-1"]  # answered; not deleted
    monkeypatch.setattr(queues, "delete", real_delete)
    clock.now += 200  # the lease lapses; SQS hands the message out again
    for message in queues.receive(wait_seconds=0):
        supervisor.dispatch(MessageReceived(message))
    assert answers(queues) == [("a1", None)] and queues.remaining() == []  # deleted, not run or answered again
    assert supervisor.pool.started == [("a1", "run")]


def test_a_response_interrupted_by_a_crash_is_sent_again_the_same_not_answered_anew(world, monkeypatch):
    supervisor, queues, clock = world
    deliver(supervisor, queues, command("a1"))
    # SQS takes the response, then the supervisor dies before it can note that (or delete the message).
    monkeypatch.setattr(supervisor.responder, "_answered", lambda command_id: None)
    monkeypatch.setattr(supervisor.delivery, "_settle", lambda outcomes: None)
    finish(supervisor, "a1")
    first = [r for r in queues.responses if r["type"] == "response"]
    assert [r["commandId"] for r in first] == ["a1"] and queues.remaining() == ["m-1"]

    restarted = Supervisor(supervisor.config, queues, pool=FakePool, clock=clock)  # type: ignore[arg-type]
    clock.now += 200  # the lease lapses; SQS hands the message out again
    for message in queues.receive(wait_seconds=0):
        restarted.dispatch(MessageReceived(message))
    again = [r for r in queues.responses if r["type"] == "response"]
    assert again == [first[0], first[0]]  # the same response, byte for byte: not run, not answered differently
    assert restarted.pool.started == [] and queues.remaining() == []
    for message in queues.receive(wait_seconds=0):  # and nothing more after that
        restarted.dispatch(MessageReceived(message))
    assert len([r for r in queues.responses if r["type"] == "response"]) == 2


def test_the_loop_marks_a_message_decided_only_after_publishing_its_free_slots(world):
    supervisor, queues, _ = world
    queues.send(command("c1"))
    queues.send(command("c2", client="beta"))
    seen = []
    real_publish = supervisor.sharing.publish

    def publish(router):
        real_publish(router)
        seen.append([event.decided.is_set() for event in events])

    supervisor.sharing.publish = publish  # type: ignore[method-assign]
    events = [MessageReceived(m) for m in queues.receive(max_messages=10, wait_seconds=0)]
    for event in events:
        supervisor.visibility.hold(event.message)
        supervisor.events.put(event)
    supervisor.step(0)
    assert seen == [[False, False]] and events[0].decided.is_set() and not events[1].decided.is_set()
    assert supervisor.sharing.free_slots == 1  # c1 started: what a poller waiting on it reads
    supervisor.step(0)
    assert events[1].decided.is_set() and supervisor.sharing.free_slots == 0


def test_a_second_copy_of_a_command_is_deleted_not_run_again(world):
    """A forward, a put-back, a resend that had landed: new SQS messages of one command. The command id decides:
    the copy neither interrupts the run nor runs again, and the command gets one answer."""
    supervisor, queues, _ = world
    deliver(supervisor, queues, command("a1"))
    deliver(supervisor, queues, command("a1"))  # the same body, another message
    assert supervisor.pool.interrupted == [] and supervisor.pool.started == [("a1", "run")]
    assert len(queues.remaining()) == 1  # the copy is gone, the message we hold stays until answered
    deliver(supervisor, queues, command("b1", client="beta"), command("b1", client="beta"))  # waiting or not
    assert supervisor.pool.started == [("a1", "run"), ("b1", "run")]
    finish(supervisor, "a1")
    finish(supervisor, "b1")
    assert answers(queues) == [("a1", None), ("b1", None)] and queues.remaining() == []


def test_answered_records_that_cannot_be_read_put_the_command_off_not_reject_it(world, monkeypatch):
    """EIO on the shared volume: whether the command was answered is unknown, so it neither runs (it may be
    answered twice) nor is dead-lettered as invalid; it comes back a little later."""
    import errno

    supervisor, queues, clock = world
    records = supervisor.responder.answered

    def unreadable(command_id: str) -> bool:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(records, "answered", unreadable)
    deliver(supervisor, queues, command("a1"))
    assert answers(queues) == [] and queues.dead_letters == [] and supervisor.pool.started == []
    assert queues.in_flight() == ["m-1"]  # put off, not deleted
    monkeypatch.undo()
    clock.now += 11
    for message in queues.receive(wait_seconds=0):
        supervisor.dispatch(MessageReceived(message))
    assert supervisor.pool.started == [("a1", "run")]


def test_an_unreadable_record_file_is_an_error_not_a_missing_record(tmp_path, monkeypatch):
    import errno

    from supervisor import answer_records as answered

    def failing_open(*_args: Any, **_kwargs: Any) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(answered.os, "open", failing_open)
    with pytest.raises(OSError):
        answered.AnsweredCommands(str(tmp_path)).answered("a1")


def test_a_warm_stop_ends_a_finishing_worker_before_its_grace_is_over(world, monkeypatch):
    """Committing interrupted work may take PUSH_RETRY_SECONDS + 120 s; the orchestrator kills us at the grace.
    So in the grace's last seconds what still finishes is ended at once and its message handed back: the
    supervisor leaves within SHUTDOWN_GRACE_SECONDS with every message accounted for."""
    supervisor, queues, clock = world
    graces: list[float] = []
    interrupt = supervisor.pool.interrupt
    monkeypatch.setattr(
        supervisor.pool, "interrupt", lambda run, *, grace: graces.append(grace) or interrupt(run, grace=grace)
    )

    def tick(seconds: float) -> None:
        clock.now += seconds
        supervisor._next_tick = 0
        supervisor.step(0)

    deliver(supervisor, queues, command("a1"))
    supervisor.on_signal(15)
    tick(0)
    tick(17.1)  # 25 - 5 - 3: the running command is interrupted
    a1 = run_of(supervisor, "a1")
    supervisor.dispatch(TreeEnded(a1, {"SIGINT": 3}))
    assert a1.phase == "finishing" and supervisor.pool.started[-1] == ("a1", "interrupted")
    tick(4.8)  # 21.9 s: the finishing worker still has time
    assert graces == [5.0] and a1.phase == "finishing"
    tick(0.2)  # 22.1 s: 3 s of the grace left, and it is still pushing
    assert graces == [5.0, 0.0] and a1.phase == "interrupting"
    supervisor.dispatch(TreeEnded(a1, {"SIGTERM": 2}))
    assert supervisor.finished() and answers(queues) == []  # no answer: the command is not finished
    assert "m-1" not in queues.in_flight() and len(queues.remaining()) == 1  # handed back for the next one
    assert clock.now - supervisor.shutdown.started < supervisor.config.shutdown_grace_seconds


def test_a_worker_that_lost_its_lease_puts_the_command_back_as_a_new_message(world):
    """Issue 18, defect 1: the command of a worker that found its workspace taken over (exit 5) waits for the
    new owner; put off with a visibility change, each try counted as a receive towards maxReceiveCount."""
    supervisor, queues, clock = world
    deliver(supervisor, queues, command("a1"))
    finish(supervisor, "a1", code=WorkerExit.LEASE_LOST)
    assert answers(queues) == [] and not supervisor.router.running
    assert queues.remaining() == ["m-2"] and queues.in_flight() == ["m-2"]  # the original deleted, a copy delayed …
    clock.now += 3
    (copy,) = queues.receive(wait_seconds=0)  # … a copy two seconds late, its receive count new
    assert copy.message_id != "m-1" and copy.receive_count == 1 and json.loads(copy.body)["commandId"] == "a1"


def test_a_stop_waits_for_admissions_being_decided_up_to_its_deadline_then_gives_them_back(world):
    """Admissions are decided off the loop (several containers): a stop must neither lose one nor wait for
    ever on a DynamoDB that does not answer."""
    supervisor, queues, clock = world
    undecided = []
    supervisor.sharing.admit = lambda *_args, then, **_kwargs: undecided.append(then)  # never decides
    deliver(supervisor, queues, command("a1"))
    assert undecided and list(supervisor.intake.admitting) == ["a1"]
    supervisor.on_signal(signal.SIGTERM)
    supervisor.step(0)
    assert not supervisor.finished()  # waits for the decision …
    clock.now += 25  # … until SHUTDOWN_GRACE_SECONDS is over
    assert supervisor.finished()
    done = threading.Thread(target=lambda: None)
    done.start()
    supervisor._leave(done)
    assert queues.in_flight() == [] and queues.remaining() == ["m-1"]  # handed back, visible at once


class StandInStepFunctions:
    """Records each callback; the first `failures` calls fail as a passing fault would."""

    def __init__(self, failures: int = 0):
        self.calls: list = []
        self.failures = failures

    def call(self, callback) -> str | None:
        self.calls.append(callback)
        if self.failures:
            self.failures -= 1
            return "ThrottlingException: slow down"
        return None


def test_a_callback_that_failed_is_made_again_the_same_on_redelivery_and_then_never(world):
    """Issue 19: one callback per token. A failed callback keeps the message (its answer record not yet
    written); the redelivery makes the same callback again; once made, a redelivery is only deleted."""
    supervisor, queues, clock = world
    stand_in = supervisor.delivery.stepfunctions = StandInStepFunctions(failures=1)
    deliver(supervisor, queues, command("a1", taskToken="token-1"))
    finish(supervisor, "a1")
    assert len(stand_in.calls) == 1 and queues.remaining() == ["m-1"]  # kept: the callback failed
    assert not supervisor.responder.answered.answered("a1")
    clock.now += 31  # the response's retry
    for message in queues.receive(wait_seconds=0):
        supervisor.visibility.hold(message)
        supervisor.dispatch(MessageReceived(message))
    assert [c.token for c in stand_in.calls] == ["token-1", "token-1"] and stand_in.calls[0] == stand_in.calls[1]
    assert queues.remaining() == [] and supervisor.responder.answered.answered("a1")
    deliver(supervisor, queues, command("a1", taskToken="token-1"))  # delivered once more (a failed delete)
    assert len(stand_in.calls) == 2 and queues.remaining() == []  # only deleted
