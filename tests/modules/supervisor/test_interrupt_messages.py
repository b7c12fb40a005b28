"""Interrupt messages (issue 19): parsed (supervisor/contract/interrupts.py) and acted on by the loop
(supervisor/stop_requests.py): the running command of the workspace is interrupted, a waiting one
superseded, the message deleted; with nothing to stop, deleted too."""

from __future__ import annotations

import json

import pytest
from test_loop import answers, command, deliver, run_of, world  # noqa: F401 - the fixture

from supervisor.contract.command import InvalidMessage
from supervisor.contract.interrupts import parse_interrupt


def interrupt(**fields) -> str:
    return json.dumps(
        {"type": "interrupt", "projectId": "acme", "userId": "u1", "reason": "user pressed stop", **fields}
    )


def test_an_interrupt_message_is_told_from_a_command_and_checked():
    parsed = parse_interrupt(interrupt(), "/srv/{clientId}/site.git")
    assert parsed is not None and parsed.workspace_name == "acme/u1/site" and parsed.reason == "user pressed stop"
    assert parsed.matches(("acme", "u1", "site")) and not parsed.matches(("acme", "u2", "site"))
    assert parse_interrupt(interrupt(repo="https://x/other.git")).repo_name == "other"
    assert parse_interrupt(interrupt()).repo_name is None  # no REPO_URL: every repository of that user
    assert parse_interrupt(json.dumps({"commandId": "c1"})) is None and parse_interrupt("nope") is None
    with pytest.raises(InvalidMessage):
        parse_interrupt(interrupt(userId="Not A Slug"))
    with pytest.raises(InvalidMessage):
        parse_interrupt(interrupt(reason=5))


def test_an_interrupt_stops_the_running_command_and_is_deleted(world):  # noqa: F811
    supervisor, queues, _ = world
    deliver(supervisor, queues, command("a1", client="acme"), command("b1", client="beta"))
    deliver(supervisor, queues, interrupt())
    assert supervisor.pool.interrupted == ["a1"]  # acme's only
    assert run_of(supervisor, "a1").interrupt_reason == "interrupted: user pressed stop"
    assert queues.remaining() == ["m-1", "m-2"]  # the commands, still held; the interrupt message deleted


def test_an_interrupt_supersedes_a_waiting_command(world):  # noqa: F811
    supervisor, queues, _ = world
    deliver(supervisor, queues, command("a1", client="acme"), command("a2", client="acme"))  # a1 interrupting
    deliver(supervisor, queues, interrupt())
    assert answers(queues) == [("a2", "INTERRUPTED")] and supervisor.pool.interrupted == ["a1"]  # not twice


def test_an_interrupt_with_nothing_to_stop_is_deleted(world):  # noqa: F811
    supervisor, queues, _ = world
    deliver(supervisor, queues, interrupt())
    assert queues.remaining() == [] and supervisor.pool.interrupted == [] and answers(queues) == []
