"""supervisor/answer_records.py: records in a folder the jobs' volume holds count only for the command they name."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path

import pytest

from supervisor import answer_records as answered_module
from supervisor.answer_records import KEEP_SECONDS, PRUNE_EVERY_SECONDS, AnsweredCommands


def response(command_id: str) -> dict[str, object]:
    return {"type": "response", "commandId": command_id, "success": True, "summary": f"done {command_id}"}


@pytest.fixture
def records(tmp_path: Path) -> AnsweredCommands:
    return AnsweredCommands(str(tmp_path))


def test_an_intended_response_is_sent_again_until_it_is_recorded(records):
    records.intend("cmd-a", response("cmd-a"))
    assert records.maybe_sent("cmd-a") == response("cmd-a")
    assert not records.answered("cmd-a")
    records.record("cmd-a")
    assert records.answered("cmd-a")
    assert records.maybe_sent("cmd-a") is None
    assert json.loads(records._path("cmd-a").read_text()) == {"commandId": "cmd-a"}


def test_a_stored_response_of_another_command_is_never_sent(records, caplog):
    records.intend("cmd-a", response("cmd-a"))
    sending = records._path("cmd-a").with_suffix(".sending")
    sending.replace(records._path("cmd-b").with_suffix(".sending"))  # cmd-a's result filed under cmd-b
    caplog.set_level(logging.WARNING, logger="supervisor.answer_records")
    assert records.maybe_sent("cmd-b") is None
    assert records.maybe_sent("cmd-b") is None
    warnings = [r for r in caplog.records if r.name == "supervisor.answer_records"]
    assert len(warnings) == 1 and warnings[0].commandId == "cmd-b"


@pytest.mark.parametrize("stored", [[1, 2], "text", {"commandId": None}, {"no": "id"}])
def test_a_stored_value_that_is_not_this_commands_response_is_ignored(records, stored):
    records.intend("cmd-b", stored)  # type: ignore[arg-type]
    assert records.maybe_sent("cmd-b") is None


def test_a_linked_stored_response_is_not_read(records, tmp_path):
    planted = tmp_path / "planted.json"
    planted.write_text(json.dumps(response("cmd-b")))
    records.intend("cmd-x", response("cmd-x"))  # makes the folder
    records._path("cmd-b").with_suffix(".sending").symlink_to(planted)
    assert records.maybe_sent("cmd-b") is None


def test_a_marker_answers_only_the_command_it_names(records):
    records.record("cmd-a")
    (records.folder / "copy").write_bytes(records._path("cmd-a").read_bytes())
    (records.folder / "copy").replace(records._path("cmd-b"))
    assert records.answered("cmd-a")
    assert not records.answered("cmd-b")


def test_a_linked_marker_is_no_proof(records):
    records.record("cmd-a")
    records._path("cmd-b").write_text(json.dumps({"commandId": "cmd-b"}))
    records._path("cmd-c").symlink_to(records._path("cmd-b"))
    assert records.answered("cmd-b")
    assert not records.answered("cmd-c")
    records._path("cmd-b").unlink()
    records._path("cmd-b").symlink_to(records.folder / "missing")
    assert not records.answered("cmd-b")


def test_an_empty_marker_of_an_earlier_version_counts_only_when_we_own_it(records, monkeypatch):
    records.record("cmd-x")  # makes the folder
    records._path("cmd-old").write_bytes(b"")
    assert records.answered("cmd-old")
    monkeypatch.setattr(answered_module.os, "geteuid", lambda: os.getuid() + 1)  # written by another uid
    assert not records.answered("cmd-old")


def test_a_linked_deaths_record_is_neither_read_nor_written_through(records, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("7")
    records.record("cmd-x")  # makes the folder
    records._path("cmd-a").with_suffix(".deaths").symlink_to(elsewhere)
    assert records.count_death("cmd-a") == 1
    assert records.count_death("cmd-a") == 2
    assert elsewhere.read_text() == "7"


def test_the_records_folders_are_private(tmp_path):
    (tmp_path / ".supervisor").mkdir(mode=0o755)
    (tmp_path / ".supervisor").chmod(0o755)  # one made before this change
    records = AnsweredCommands(str(tmp_path))
    records.intend("cmd-a", response("cmd-a"))
    for folder in (tmp_path / ".supervisor", records.folder):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_prune_removes_an_old_link_without_touching_its_target(records, tmp_path):
    target = tmp_path / "target"
    target.write_text("keep")
    records.record("cmd-a")
    link = records.folder / "link"
    link.symlink_to(target)
    os.utime(link, (0, 0), follow_symlinks=False)
    assert records.prune() == 1
    assert not os.path.lexists(link) and target.read_text() == "keep"
    assert records.answered("cmd-a")


def test_answers_are_pruned_while_the_supervisor_runs_not_only_at_start_up(tmp_path):
    now = [1_000_000.0]
    records = AnsweredCommands(str(tmp_path), clock=lambda: now[0])
    records.record("old")
    old = records._path("old")
    os.utime(old, (time.time() - KEEP_SECONDS - 60,) * 2)  # older than any message SQS could hand out
    assert records.prune_now_and_then() is None and old.exists()  # pruned at start-up: not again so soon
    now[0] += PRUNE_EVERY_SECONDS
    records.record("new")  # answering a command prunes, on a thread, once the hour is up
    assert records._pruning is not None
    records._pruning.join(timeout=10)
    assert not old.exists() and records.answered("new")
    assert records.prune_now_and_then() is None  # and not again before the next hour
