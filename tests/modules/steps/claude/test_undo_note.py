"""What the agent is told of an undo (steps/claude/undo_note.py): the note in its next prompt, kept per
thread in our part of the agent state until a run has read it."""

from __future__ import annotations

from steps.claude.memory import UNDONE_KEPT, AgentState
from steps.claude.undo_note import FILES_NAMED, UndoneChange, with_undo_note

BANNER = UndoneChange("c2", "Add a banner", ("src/pages/index.astro", "notes/instructions.txt"))
HEADER = UndoneChange("c1", 'Make the "header" blue', ("src/components/Header.astro",))


def test_no_undo_leaves_the_instruction_as_it_is():
    assert with_undo_note("Make it green\n", []) == "Make it green\n"


def test_the_note_follows_the_instruction_and_names_each_change_and_its_files():
    prompt = with_undo_note("Make it green\n", [BANNER, HEADER])
    instruction, note = prompt.split("\n\n", 1)
    assert instruction == "Make it green"
    assert "took back" not in instruction and "/undo to take back 2 changes of yours" in note
    assert '- "Add a banner" (src/pages/index.astro, notes/instructions.txt)' in note
    assert '- "Make the \\"header\\" blue" (src/components/Header.astro)' in note  # quoted as JSON: one line
    many = UndoneChange("c3", "Rename pages", tuple(f"src/pages/p{i}.astro" for i in range(FILES_NAMED + 5)))
    assert f"p{FILES_NAMED - 1}.astro …)" in with_undo_note("x", [many]) and "p14" not in with_undo_note("x", [many])


def test_undos_are_kept_per_thread_in_order_until_forgotten(tmp_path):
    thread, other = AgentState(tmp_path, "thread-t1"), AgentState(tmp_path, "thread-t2")
    assert thread.undone_since_last_run("thread-t1") == []
    thread.note_undone("thread-t1", BANNER)
    thread.note_undone("thread-t1", HEADER)
    assert thread.undone_since_last_run("thread-t1") == [BANNER, HEADER]
    assert other.undone_since_last_run("thread-t2") == []
    assert (tmp_path / "sessions").stat().st_mode & 0o777 == 0o700  # ours: never lent to the job
    thread.forget_undone("thread-t1")
    assert thread.undone_since_last_run("thread-t1") == []
    thread.forget_undone("thread-t1")  # nothing to forget: no error


def test_only_the_newest_undos_are_kept_and_a_damaged_record_is_an_empty_one(tmp_path):
    state = AgentState(tmp_path, "thread-t1")
    for index in range(UNDONE_KEPT + 3):
        state.note_undone("thread-t1", UndoneChange(f"c{index}", f"change {index}", ("a.txt",)))
    kept = state.undone_since_last_run("thread-t1")
    assert [c.command_id for c in kept] == [f"c{i}" for i in range(3, UNDONE_KEPT + 3)]
    record = tmp_path / "sessions" / "thread-t1.undone.json"
    for damaged in ("{not json", '{"commandId": "c1"}', '[{"commandId": 1, "subject": "x", "files": []}, 7]'):
        record.write_text(damaged)
        assert state.undone_since_last_run("thread-t1") == []
    state.note_undone("thread-t1", BANNER)  # starts afresh over a damaged record
    assert state.undone_since_last_run("thread-t1") == [BANNER]
