"""Issue 19, the third message shape (CONTRACT notes): `{taskToken, messageId, instruction | text | content,
threadId, projectId, userId, repoUrl?, branch?, attachments?, context?}`, its branch rules, and its responses."""

from __future__ import annotations

import json
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.contract.attachments import MAX_ATTACHMENTS, MAX_CONTEXT_BYTES
from supervisor.contract.branches import (
    REFUSED_BRANCH_NAMES,
    branch_for_thread,
    branch_refusal,
    is_command_branch,
    is_thread_branch,
)
from supervisor.contract.command import (
    SHAPE_COMMAND,
    SHAPE_TASK,
    Command,
    check_branch,
    parse_command,
    read_ids,
    read_message_shape,
)
from supervisor.contract.invalid import InvalidMessage
from supervisor.contract.responses import failure_response, final_response, invalid_message_response

REPO = "/srv/git/site.git"


def task(**fields):
    base = {
        "taskToken": "AQB8AAAAKgAAAAMAAAAA-token",
        "messageId": "m1",
        "instruction": "Make the header blue",
        "threadId": "t1",
        "projectId": "acme",
        "userId": "u1",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None})


def ours(**fields):
    base = {"instruction": "x", "commandId": "c1", "chatThreadId": "t1", "clientId": "acme", "userId": "u1"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None})


# The shape -------------------------------------------------------------------------------------------------


def test_the_task_shape_is_a_command_keyed_by_its_message_id():
    command = parse_command(task(), REPO)
    assert command.command_id == "m1"
    assert command.message_shape == SHAPE_TASK
    assert (command.thread_id, command.session_id, command.client_id, command.user_id) == ("t1", "t1", "acme", "u1")
    assert command.branch == "thread-t1"
    assert command.instruction == "Make the header blue"
    assert (command.attachments, command.context) == ((), None)
    assert "taskToken" not in json.dumps(command.to_dict()) and "AQB8" not in json.dumps(command.to_dict())


@pytest.mark.parametrize("name", ["instruction", "text", "content"])
def test_the_instruction_may_come_under_any_of_its_three_names(name):
    raw = task(**{"instruction": None, name: "Add a footer"})
    assert parse_command(raw, REPO).instruction == "Add a footer"


def test_the_anchor_aliases_and_repo_url_work_as_in_the_other_shapes():
    raw = task(threadId=None, chatThreadId="t7", projectId=None, clientId="globex", repoUrl="https://x.test/o/s.git")
    command = parse_command(raw, None)
    assert (command.thread_id, command.client_id, command.repo_name) == ("t7", "globex", "s")
    assert parse_command(task(sessionId="s9"), REPO).session_id == "s9"


def test_command_id_wins_over_message_id():
    command = parse_command(ours(messageId="m1", branch="feature/x", text="other"), REPO)
    assert (command.command_id, command.message_shape, command.branch) == ("c1", SHAPE_COMMAND, "thread-t1")
    assert command.instruction == "x"  # `text` is an unknown field in our shape


def test_a_null_command_id_counts_as_absent():
    assert parse_command(task(commandId=None), REPO).message_shape == SHAPE_TASK
    raw = json.dumps({**json.loads(task()), "commandId": None})
    assert parse_command(raw, REPO).command_id == "m1"


def test_branch_and_context_are_unknown_fields_in_our_shape_and_attachments_are_not():
    command = parse_command(ours(branch="main", context=[1]), REPO)
    assert (command.branch, command.context) == ("thread-t1", None)
    # Attachments come in every shape (issue 20): checked, and kept, in ours too.
    with pytest.raises(InvalidMessage, match="attachments must be a list"):
        parse_command(ours(attachments="nonsense"), REPO)
    assert parse_command(ours(attachments=[{"key": "a/b.png"}]), REPO).attachments == ({"key": "a/b.png"},)


@pytest.mark.parametrize("build", [ours, task])
def test_a_task_token_is_tolerated_on_every_shape_and_never_kept(build):
    command = parse_command(build(taskToken="secret-token-value"), REPO)
    assert "secret-token-value" not in repr(command) and "secret-token-value" not in json.dumps(command.to_dict())


def test_task_token_on_the_later_command_shape():
    raw = ours(chatThreadId=None, threadId="t2", clientId=None, projectId="acme", taskToken="tok", type="work")
    assert parse_command(raw, REPO).message_shape == SHAPE_COMMAND


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"messageId": ""}, "messageId must be a non-empty string"),
        ({"messageId": 5}, "messageId"),
        ({"messageId": "m" * 129}, "messageId is longer than 128"),
        ({"messageId": "a\nb"}, "messageId contains control characters"),
        ({"messageId": "ab\ud800"}, "messageId"),
        ({"instruction": None}, "instruction (or text, or content) must be a non-empty string"),
        ({"instruction": ""}, "instruction (or text, or content) must be a non-empty string"),
        ({"instruction": "  \n", "text": ""}, "instruction (or text, or content) must be a non-empty string"),
        ({"text": "also"}, "instruction and text"),
        ({"instruction": None, "text": "a", "content": "b"}, "text and content"),
        ({"content": 5}, "content must be a string"),
        ({"instruction": None, "text": "x" * (64 * 1024 + 1)}, "text is larger than 64 KiB"),
        ({"instruction": None, "content": "a\x00b"}, "content contains a NUL"),
        ({"instruction": None, "text": "a\ud800"}, "text is not valid Unicode"),
        ({"threadId": None}, "threadId"),
        ({"projectId": "Acme"}, "projectId"),
        ({"userId": None}, "userId"),
        ({"type": "interrupt"}, "type"),
        ({"repoUrl": "ext::sh -c x"}, "repoUrl"),
        ({"branch": "main"}, "default or release branch"),
        ({"branch": 7}, "branch must be a non-empty string"),
        ({"branch": ""}, "branch must be a non-empty string"),
        ({"attachments": {}}, "attachments must be a list"),
        ({"attachments": [{"s3Uri": "s3://b/k"}] * (MAX_ATTACHMENTS + 1)}, f"at most {MAX_ATTACHMENTS}"),
        ({"attachments": ["s3://b/k"]}, "attachments[0] must be an object"),
        ({"attachments": [{"key": "k"}, {"name": 5}]}, "attachments[1].name must be a non-empty string"),
        ({"attachments": [{"s3Uri": ""}]}, "attachments[0].s3Uri must be a non-empty string"),
        ({"attachments": [{"name": "a\nb"}]}, "attachments[0].name"),
        ({"attachments": [{"key": "k" * 2049}]}, "attachments[0].key is longer"),
        ({"attachments": [{"url": "https://x"}]}, "attachments[0] needs s3Uri or key"),
        ({"context": [1, 2]}, "context must be a JSON object"),
        ({"context": "text"}, "context must be a JSON object"),
        ({"context": {"a": "x" * MAX_CONTEXT_BYTES}}, "context is larger than 16 KiB"),
        ({"context": {"a": "\ud800"}}, "context is not plain JSON"),
    ],
)
def test_invalid_task_messages(fields, reason):
    with pytest.raises(InvalidMessage) as caught:
        parse_command(task(**fields), REPO)
    assert reason in caught.value.reason
    if "messageId" not in fields:
        assert caught.value.command_id == "m1"  # so the invalid message is answered under its id


def test_nan_in_the_context_is_refused():
    raw = task().replace('"userId"', '"context": {"x": NaN}, "userId"')
    with pytest.raises(InvalidMessage, match="context is not plain JSON"):
        parse_command(raw, REPO)


def test_neither_id_says_both_names():
    raw = json.dumps({k: v for k, v in json.loads(task()).items() if k != "messageId"})
    with pytest.raises(InvalidMessage, match=r"commandId \(or messageId\) must be a non-empty string") as caught:
        parse_command(raw, REPO)
    assert caught.value.command_id is None


def test_attachments_keep_only_their_known_string_fields():
    attachments = [
        {"s3Uri": "s3://bucket/a.png", "name": "a.png", "contentType": "image/png", "size": 12, "url": "x"},
        {"key": "uploads/b.pdf", "contentType": None},
    ]
    command = parse_command(task(attachments=attachments), REPO)
    assert command.attachments == (
        {"s3Uri": "s3://bucket/a.png", "name": "a.png", "contentType": "image/png"},
        {"key": "uploads/b.pdf"},
    )
    assert parse_command(task(attachments=[]), REPO).attachments == ()
    assert len(parse_command(task(attachments=[{"key": "k"}] * MAX_ATTACHMENTS), REPO).attachments) == MAX_ATTACHMENTS


def test_context_is_kept_as_given_up_to_16_kib():
    context = {"page": "/about", "selection": {"start": 1, "end": 4}, "tags": ["a", None, True, 1.5]}
    assert parse_command(task(context=context), REPO).context == context
    compact = len(json.dumps({"a": ""}, separators=(",", ":")))
    at_limit = {"a": "x" * (MAX_CONTEXT_BYTES - compact)}
    assert parse_command(task(context=at_limit), REPO).context == at_limit


def test_a_command_is_hashable_and_equal_after_a_json_round_trip():
    command = parse_command(task(branch="feature/x", attachments=[{"key": "k"}], context={"a": [1]}), REPO)
    again = Command(**json.loads(json.dumps(command.to_dict())))
    assert again == command and hash(again) == hash(command)
    assert isinstance(again.attachments, tuple)


def test_a_job_dict_from_before_the_new_fields_still_loads():
    old = parse_command(ours(), REPO).to_dict()
    for name in ("message_shape", "attachments", "context"):
        del old[name]
    command = Command(**old)
    assert (command.message_shape, command.attachments, command.context) == (SHAPE_COMMAND, (), None)


# Branches --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "branch",
    ["feature/header", "edit-42", "thread-t1", "thread-other", "users/u1/draft.v2", "a_b", "Fix.Header", "x" * 200],
)
def test_requested_branches_are_worked_on(branch):
    assert parse_command(task(branch=branch), REPO).branch == branch
    assert branch_refusal(branch) is None and is_command_branch(branch)
    assert subprocess.run(["git", "check-ref-format", f"refs/heads/{branch}"]).returncode == 0


@pytest.mark.parametrize(
    ("branch", "reason"),
    [
        *[(name, "default or release branch") for name in sorted(REFUSED_BRANCH_NAMES)],
        ("HEAD", "default or release branch"),
        ("Main", "default or release branch"),
        ("MASTER", "default or release branch"),
        ("refs/heads/feature", "may not start with 'refs/'"),
        ("heads/feature", "may not start with 'heads/'"),
        ("tags/v1", "may not start with 'tags/'"),
        ("remotes/origin/x", "may not start with 'remotes/'"),
        ("origin/main", "may not start with 'origin/'"),
        ("feature/HEAD", "part named HEAD"),
        ("thread-t1-conflict-1", "-conflict-N"),
        ("feature-conflict-12", "-conflict-N"),
        ("deadbeef", "all hex"),
        ("0123456789abcdef0123456789abcdef01234567", "all hex"),
        ("x" * 201, "longer than 200"),
        ("-rf", "none starting with '.' or '-'"),
        ("/feature", "/-separated"),
        ("feature/", "/-separated"),
        ("a//b", "/-separated"),
        ("a..b", "'..'"),
        (".hidden", "none starting with '.'"),
        ("a/.b", "none starting with '.'"),
        ("a/-b", "none starting with '.' or '-'"),
        ("feature.lock", "'.lock'"),
        ("a.lock/b", "'.lock'"),
        ("feature.", "end with '.'"),
        ("a b", "/-separated"),
        ("a~1", "/-separated"),
        ("a^", "/-separated"),
        ("a:b", "/-separated"),
        ("a@{1}", "/-separated"),
        ("@", "/-separated"),
        ("a\\b", "/-separated"),
        ("a*", "/-separated"),
        ("a?", "/-separated"),
        ("a[b", "/-separated"),
        ("feature\n", "/-separated"),
        ("日本", "/-separated"),
        ("$(touch x)", "/-separated"),
    ],
)
def test_refused_branches(branch, reason):
    with pytest.raises(InvalidMessage) as caught:
        parse_command(task(branch=branch), REPO)
    assert reason in caught.value.reason and caught.value.command_id == "m1"
    assert not is_command_branch(branch) or is_thread_branch(branch)


def test_check_branch_returns_the_name_or_raises():
    assert check_branch("feature/x") == "feature/x"
    with pytest.raises(InvalidMessage, match="default"):
        check_branch("main", "c9")


@given(st.text(alphabet="abAB09._-/", min_size=1, max_size=40))
def test_every_accepted_branch_is_a_branch_git_accepts(name):
    if branch_refusal(name) is None:
        assert subprocess.run(["git", "check-ref-format", f"refs/heads/{name}"]).returncode == 0
        assert name.lower() not in REFUSED_BRANCH_NAMES and not name.startswith(("/", "-", "."))


@pytest.mark.parametrize("thread", ["t1", "thread-abc", ".x", "-rf", "a b", "../../etc", "x-conflict-1"])
def test_every_branch_a_thread_gets_is_a_command_branch(thread):
    branch = branch_for_thread(thread)
    assert is_thread_branch(branch) and is_command_branch(branch)


@pytest.mark.parametrize("name", ["thread", "thread-a..b", "thread-a/b", "thread-a.lock", "thread-" + "a" * 129, 5])
def test_names_no_thread_gets_are_not_thread_branches(name):
    assert not is_thread_branch(name)


# Responses -------------------------------------------------------------------------------------------------


def respond(command):
    return final_response(
        command,
        preview_url="https://edit.acme.webordinary.com",
        summary="done",
        files_changed=["index.html"],
        commit="abc",
        steps=[],
        duration_ms=5,
        build_success=True,
        deploy_success=True,
        push_success=True,
        extra={"messageId": "not this", "siteUrl": "nor this"},
    )


def test_a_task_commands_response_carries_the_anchor_names_next_to_ours():
    body = respond(parse_command(task(branch="feature/x"), REPO))
    assert body["messageId"] == body["commandId"] == "m1"
    assert body["siteUrl"] == body["previewUrl"] == "https://edit.acme.webordinary.com"
    assert body["branch"] == "feature/x"
    keys = list(body)
    assert keys.index("messageId") == keys.index("commandId") + 1
    assert keys.index("siteUrl") == keys.index("previewUrl") + 1


def test_other_commands_responses_are_unchanged():
    plain = final_response(
        parse_command(ours(messageId="m1"), REPO),
        preview_url="p",
        summary="",
        files_changed=[],
        commit=None,
        steps=[],
        duration_ms=0,
        build_success=False,
        deploy_success=False,
        push_success=False,
    )
    assert "messageId" not in plain and "siteUrl" not in plain


def test_failure_responses_carry_them_too():
    body = failure_response(parse_command(task(), REPO), preview_url="p", error_code="WORKER_DIED", error="died")
    assert (body["messageId"], body["siteUrl"], body["errorCode"]) == ("m1", "p", "WORKER_DIED")
    plain = failure_response(parse_command(ours(), REPO), preview_url="p", error_code="INTERNAL", error="x")
    assert "messageId" not in plain and "siteUrl" not in plain


def test_an_invalid_task_message_is_answered_under_its_message_id():
    raw = task(branch="main")
    command_id, session_id = read_ids(raw)
    assert (command_id, session_id, read_message_shape(raw)) == ("m1", "t1", SHAPE_TASK)
    body = invalid_message_response(command_id, session_id, "bad branch", message_shape=read_message_shape(raw))
    assert (body["commandId"], body["messageId"], body["siteUrl"], body["errorCode"]) == (
        "m1",
        "m1",
        None,
        "INVALID_MESSAGE",
    )
    assert "messageId" not in invalid_message_response("c1", None, "bad")


def test_read_ids_prefers_command_id_and_never_falls_back_from_a_bad_one():
    assert read_ids(ours(messageId="m1", clientId="BAD")) == ("c1", "t1")
    assert read_ids(ours(commandId="c\n1", messageId="m1")) == (None, "t1")
    assert read_ids(task(messageId="m\n1")) == (None, "t1")
    assert read_message_shape(ours(messageId="m1")) == SHAPE_COMMAND
    assert read_message_shape("{") == SHAPE_COMMAND and read_message_shape("[]") == SHAPE_COMMAND
