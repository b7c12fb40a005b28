"""CONTRACT §1: both shapes, every validation rule, and the branch-name rule."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.contract.command import InvalidMessage, branch_for_thread, parse_command, read_ids

REPO = "/srv/git/site.git"


def body(**fields):
    base = {"instruction": "x", "commandId": "c1", "chatThreadId": "t1", "clientId": "acme", "userId": "u1"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None})


def test_first_shape():
    command = parse_command(body(), REPO)
    assert (command.thread_id, command.client_id, command.session_id, command.branch) == (
        "t1",
        "acme",
        "t1",
        "thread-t1",
    )
    assert command.repo_url == REPO and command.repo_name == "site"


def test_later_shape_aliases_and_projectid_wins():
    fields = {
        "type": "work",
        "instruction": "x",
        "commandId": "c",
        "threadId": "t9",
        "projectId": "globex",
        "clientId": "acme",
        "userId": "u1",
        "sessionId": "s",
        "repoUrl": "https://github.com/o/my-site.git",
    }
    raw = json.dumps(fields)
    command = parse_command(raw, None)
    assert (command.thread_id, command.client_id, command.session_id) == ("t9", "globex", "s")
    assert command.repo_name == "my-site"


def test_repo_url_template_takes_the_client():
    assert (
        parse_command(body(), "https://github.com/org/{clientId}-site").repo_url == "https://github.com/org/acme-site"
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"instruction": ""}, "instruction"),
        ({"instruction": "   \n"}, "instruction"),
        ({"instruction": "x" * (64 * 1024 + 1)}, "64 KiB"),
        ({"instruction": 5}, "instruction"),
        ({"commandId": ""}, "commandId"),
        ({"commandId": "c" * 129}, "commandId"),
        ({"commandId": "a\tb"}, "commandId"),
        ({"chatThreadId": None}, "threadId"),
        ({"sessionId": "x\x7f"}, "sessionId"),
        ({"clientId": "Acme"}, "clientId"),
        ({"clientId": "-acme"}, "clientId"),
        ({"clientId": "acme-"}, "clientId"),
        ({"clientId": "a" * 64}, "clientId"),
        ({"clientId": "../x"}, "clientId"),
        ({"userId": "u_1"}, "userId"),
        ({"userId": None}, "userId"),
        ({"type": "chat"}, "type"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": True}, "timestamp"),
        ({"repoUrl": "ext::sh -c touch% /tmp/pwned"}, "repoUrl"),
        ({"repoUrl": "--upload-pack=touch /tmp/x"}, "repoUrl"),
        ({"repoUrl": "https://github.com/o/.."}, "folder name"),
    ],
)
def test_invalid_fields(fields, reason):
    with pytest.raises(InvalidMessage) as caught:
        parse_command(body(**fields), REPO)
    assert reason in caught.value.reason


def test_no_repository_anywhere_is_invalid():
    with pytest.raises(InvalidMessage, match="REPO_URL"):
        parse_command(body(), None)


@pytest.mark.parametrize("raw", ["{", "[]", '"text"', b"\xff\xfe"])
def test_unreadable_bodies(raw):
    with pytest.raises(InvalidMessage):
        parse_command(raw, REPO)
    assert read_ids(raw) == (None, None)


def test_ids_are_read_from_an_invalid_message_when_possible():
    assert read_ids(body(clientId="BAD")) == ("c1", "t1")
    assert read_ids(json.dumps({"commandId": "c\n1", "threadId": "t"})) == (None, "t")


def test_unknown_fields_are_ignored():
    assert parse_command(body(extra={"a": 1}, attached=[1, 2]), REPO).command_id == "c1"


@pytest.mark.parametrize(
    ("thread", "branch"),
    [
        ("abc-123", "thread-abc-123"),
        ("thread-abc", "thread-abc"),
        ("A.b_C", "thread-A.b_C"),
        ("-rf", "thread--rf"),  # safe once prefixed: never read as an option
    ],
)
def test_safe_thread_ids_name_the_branch_directly(thread, branch):
    assert branch_for_thread(thread) == branch


@pytest.mark.parametrize(
    "thread", ["a b", "../../etc", "-rf /", "x..y", "a.lock", "日本語", "$(touch x)", "a~b", "@{1}"]
)
def test_unsafe_thread_ids_get_a_slug_and_hash(thread):
    branch = branch_for_thread(thread)
    assert branch.startswith("thread-") and len(branch) <= 7 + 60 + 9
    assert subprocess.run(["git", "check-ref-format", f"refs/heads/{branch}"]).returncode == 0
    assert branch[-8:] == hashlib.sha256(thread.encode()).hexdigest()[:8]


@given(st.text(min_size=1, max_size=128).filter(lambda s: not any(ord(c) < 32 or 127 <= ord(c) <= 159 for c in s)))
def test_branches_are_valid_refs_and_distinct_ids_never_share_one(thread):
    branch = branch_for_thread(thread)
    assert branch != branch_for_thread(thread + "x")
    assert branch.startswith("thread-")
    assert subprocess.run(["git", "check-ref-format", f"refs/heads/{branch}"]).returncode == 0


@pytest.mark.parametrize("field", ["clientId", "userId", "projectId"])
def test_a_trailing_newline_never_passes_an_id_pattern(field):
    with pytest.raises(InvalidMessage, match=field):
        parse_command(body(**{field: "acme\n"}), "/srv/site.git")


@pytest.mark.parametrize("field", ["instruction", "commandId", "chatThreadId", "sessionId", "repoUrl"])
def test_a_lone_surrogate_anywhere_is_an_invalid_message_not_a_crash(field):
    value = "/srv/site\ud800.git" if field == "repoUrl" else "abc\ud800"
    with pytest.raises(InvalidMessage):
        parse_command(body(**{field: value}), "/srv/site.git")
    command_id, _ = read_ids(body(commandId="abc\ud800"))
    assert command_id is None  # never quoted in a response it would make unsendable


def test_json_nested_too_deeply_is_an_invalid_message():
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(InvalidMessage, match="nested too deeply"):
        parse_command(deep)
    assert read_ids(deep) == (None, None)


def test_a_repo_url_template_that_makes_no_remote_is_an_invalid_message():
    with pytest.raises(InvalidMessage, match="folder name"):
        parse_command(body(repoUrl=None), "https://git.example/{clientId}/..")


def test_responses_stay_sendable_whatever_they_quote():
    from supervisor.queues import sendable_json

    text = sendable_json({"error": "bad \ud800 id", "summary": "Überschrift"})
    assert text.encode("utf-8") and json.loads(text) == {"error": "bad \ud800 id", "summary": "Überschrift"}
