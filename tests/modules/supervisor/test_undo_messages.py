"""Which messages are an undo (issue 20): `/undo` as the whole instruction, or `"action": "undo"`."""

from __future__ import annotations

import json

import pytest

from supervisor.contract.actions import ACTION_UNDO, UNDO_INSTRUCTION
from supervisor.contract.command import Command, parse_command
from supervisor.contract.invalid import InvalidMessage

OURS = {"commandId": "c1", "chatThreadId": "chat-1", "clientId": "acme", "userId": "u1"}
TASK = {"messageId": "m1", "threadId": "chat-1", "projectId": "acme", "userId": "u1"}


def parse(**body: object) -> Command:
    return parse_command(json.dumps(body), "/srv/site.git")


@pytest.mark.parametrize("instruction", ["/undo", "  /undo\n", "\t/undo"])
def test_an_instruction_that_is_exactly_undo_is_an_undo(instruction):
    command = parse(**OURS, instruction=instruction)
    assert command.action == ACTION_UNDO and command.instruction == UNDO_INSTRUCTION


@pytest.mark.parametrize("instruction", ["/undo please", "undo", "/UNDO", "please /undo", "/undo the header"])
def test_anything_else_is_an_instruction_for_the_agent(instruction):
    command = parse(**OURS, instruction=instruction)
    assert command.action is None and command.instruction == instruction


@pytest.mark.parametrize("shape", [OURS, TASK])
def test_the_undo_action_needs_no_instruction_in_either_shape(shape):
    command = parse(**shape, action="undo")
    assert command.action == ACTION_UNDO and command.instruction == UNDO_INSTRUCTION


def test_the_task_shapes_text_may_say_undo():
    assert parse(**TASK, text="/undo").action == ACTION_UNDO
    assert parse(**TASK, content=" /undo ").action == ACTION_UNDO


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"action": "redo"}, 'action must be "undo"'),
        ({"action": ["undo"]}, 'action must be "undo"'),
        ({"action": {"undo": 1}}, 'action must be "undo"'),
        ({"action": "undo", "instruction": "make it blue"}, "takes no instruction"),
    ],
)
def test_a_bad_action_is_one_clear_error(fields, reason):
    with pytest.raises(InvalidMessage) as error:
        parse(**OURS, **fields)
    assert reason in error.value.reason and error.value.command_id == "c1"


def test_an_undo_survives_the_job_round_trip():
    command = parse(**OURS, action="undo")
    assert Command(**json.loads(json.dumps(command.to_dict()))) == command
    assert Command(**{k: v for k, v in command.to_dict().items() if k != "action"}).action is None


def test_an_undo_with_attachments_or_a_bad_instruction_field_is_refused():
    with pytest.raises(InvalidMessage, match="takes no attachments"):
        parse(**TASK, text="/undo", attachments=[{"key": "photo.png"}])
    with pytest.raises(InvalidMessage, match="must be a string"):
        parse(**TASK, action="undo", text=5)
    assert parse(**TASK, action="undo", text="  ").action == ACTION_UNDO
