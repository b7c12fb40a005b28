"""The ledger's records are untrusted: they load only as what the contract accepts, new fields and old records
alike (issue 19: a task message's own branch, attachments and context)."""

from __future__ import annotations

import json

import pytest

from steps.git.ledger import Ledger, command_from_record, is_session_branch
from steps.worker import read_job
from supervisor.contract.command import SHAPE_COMMAND, SHAPE_TASK, parse_command

REPO = "/srv/git/site.git"


def task_command(**fields):
    body = {
        "taskToken": "tok",
        "messageId": "m1",
        "text": "Make the header blue",
        "threadId": "t1",
        "projectId": "acme",
        "userId": "u1",
        "branch": "feature/header",
        "attachments": [{"s3Uri": "s3://uploads/logo.png", "name": "logo.png", "contentType": "image/png"}],
        "context": {"page": "/about", "selection": [1, 4]},
    }
    body.update(fields)
    return parse_command(json.dumps({k: v for k, v in body.items() if v is not None}), REPO)


def our_command():
    body = {"instruction": "x", "commandId": "c1", "chatThreadId": "t1", "clientId": "acme", "userId": "u1"}
    return parse_command(json.dumps(body), REPO)


@pytest.fixture
def ledger(tmp_path):
    checkout = tmp_path / "site"
    checkout.mkdir()
    return Ledger(checkout)


def test_a_task_command_with_its_own_branch_and_attachments_round_trips(ledger):
    command = task_command()
    ledger.begin_command(command.to_dict())
    again = ledger.unfinished_command()
    assert again == command
    assert (again.branch, again.message_shape) == ("feature/header", SHAPE_TASK)
    assert again.attachments == ({"s3Uri": "s3://uploads/logo.png", "name": "logo.png", "contentType": "image/png"},)
    assert again.context == {"page": "/about", "selection": [1, 4]}


def test_a_record_written_before_the_new_fields_still_loads(ledger):
    record = our_command().to_dict()
    for name in ("message_shape", "attachments", "context"):
        del record[name]
    ledger.begin_command(record)
    command = ledger.unfinished_command()
    assert command == our_command()
    assert (command.message_shape, command.attachments, command.context) == (SHAPE_COMMAND, (), None)


def test_an_old_job_dict_still_loads_in_the_worker():
    command = our_command().to_dict()
    for name in ("message_shape", "attachments", "context"):
        del command[name]
    mode, loaded, _ = read_job(json.dumps({"mode": "run", "command": command}))
    assert (mode, loaded) == ("run", our_command())
    mode, loaded, _ = read_job(json.dumps({"mode": "run", "command": task_command().to_dict()}))
    assert loaded == task_command()


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"branch": "main"}, "a default branch"),
        ({"branch": "refs/heads/main"}, "a full ref"),
        ({"branch": "../x"}, "a path"),
        ({"branch": "feature-conflict-1"}, "a conflict branch"),
        ({"message_shape": "command"}, "only a task message names its branch"),
        ({"message_shape": "anchor"}, "an unknown shape"),
        ({"message_shape": None}, "no shape"),
        ({"message_shape": ["task"]}, "a shape that is no string"),
        ({"attachments": [{"s3Uri": 5}]}, "an attachment field that is no string"),
        ({"attachments": [{"key": "k"}] * 21}, "too many attachments"),
        ({"attachments": "s3://x"}, "attachments that are no list"),
        ({"context": [1]}, "a context that is no object"),
        ({"context": {"a": "x" * 17_000}}, "a context over 16 KiB"),
        ({"taskToken": "tok"}, "a field no Command has"),
        ({"instruction": None}, "a required field missing its value"),
    ],
)
def test_hostile_records_are_ignored(ledger, change, why):
    record = {**task_command().to_dict(), **change}
    assert command_from_record(json.loads(json.dumps(record))) is None, why
    ledger.begin_command(record)
    assert ledger.unfinished_command() is None


def test_a_record_missing_a_required_field_is_ignored():
    record = our_command().to_dict()
    del record["repo_name"]
    assert command_from_record(record) is None


def test_a_task_command_on_its_threads_branch_loads():
    command = task_command(branch=None)
    assert command.branch == "thread-t1"
    assert command_from_record(json.loads(json.dumps(command.to_dict()))) == command


@pytest.mark.parametrize("branch", ["thread-t1", "thread-.x", "thread-a-b-1234abcd", "feature/header", "edit-42"])
def test_pending_pushes_keep_every_branch_a_command_may_work_on(ledger, branch):
    assert is_session_branch(branch)
    ledger.add_pending(branch)
    assert ledger.pending_pushes() == [branch]


@pytest.mark.parametrize(
    "branch",
    ["main", "master", "HEAD", "refs/heads/x", "origin/main", "tags/v1", "../x", "-f", "a..b", "x-conflict-2", "a b"],
)
def test_pending_pushes_never_name_another_branch(ledger, branch):
    assert not is_session_branch(branch)
    with pytest.raises(ValueError, match="not a session branch"):
        ledger.add_pending(branch)
    ledger._write("pending-pushes.json", ["thread-a", branch])
    assert ledger.pending_pushes() == ["thread-a"]
