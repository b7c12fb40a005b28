"""supervisor/common/files.py: atomic writes that never follow a planted link, private folders."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from supervisor.answer_records import AnsweredCommands
from supervisor.common import files
from supervisor.common.files import private_folder, write_atomic
from supervisor.sharing.identity import storage_id
from supervisor.status import status_path, write_status


def test_write_atomic_never_writes_through_a_link_at_the_old_temporary_name(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("untouched")
    path = tmp_path / "state.json"
    # The name the old code wrote its temporary file to, predictable from the pid.
    (tmp_path / f".{path.name}.{os.getpid()}.tmp").symlink_to(target)
    write_atomic(path, '{"a": 1}')
    assert target.read_text() == "untouched"
    assert path.read_text() == '{"a": 1}' and not path.is_symlink()


def test_write_atomic_replaces_a_link_at_the_path_itself_instead_of_following_it(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("untouched")
    path = tmp_path / "state.json"
    path.symlink_to(target)
    write_atomic(path, "new")
    assert target.read_text() == "untouched"
    assert path.read_text() == "new" and not path.is_symlink()


def test_a_failed_write_leaves_the_old_content_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    write_atomic(path, "old")

    def failing_replace(source: str, destination: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "new")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_private_folder_is_made_and_an_existing_one_tightened(tmp_path):
    made = private_folder(tmp_path / "records" / "answered")
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    existing = tmp_path / "open"
    existing.mkdir(mode=0o755)
    existing.chmod(0o777)
    assert private_folder(existing) == existing
    assert stat.S_IMODE(existing.stat().st_mode) == 0o700


def test_private_folder_refuses_a_link_and_leaves_its_target_alone(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    target.chmod(0o755)
    (tmp_path / "link").symlink_to(target, target_is_directory=True)
    with pytest.raises(OSError):
        private_folder(tmp_path / "link")
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_private_folder_leaves_a_folder_it_may_not_chmod(tmp_path, monkeypatch):
    def refused(fd: int, mode: int) -> None:
        raise PermissionError("not the owner")

    monkeypatch.setattr(files.os, "fchmod", refused)
    assert private_folder(tmp_path / "theirs").is_dir()


WRITERS = {
    "status": lambda root: write_status(status_path(root), {"pid": 1}),
    "storage-id": lambda root: storage_id(str(root)),
    "answered": lambda root: AnsweredCommands(str(root)).record("cmd-a"),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("existing", [False, True])
def test_every_writer_keeps_the_supervisor_folder_private(tmp_path, writer, existing):
    folder = tmp_path / ".supervisor"
    root_mode = tmp_path.stat().st_mode
    if existing:  # made by an earlier version, open to every uid
        folder.mkdir()
        folder.chmod(0o755)
    WRITERS[writer](tmp_path)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert tmp_path.stat().st_mode == root_mode  # WORKSPACE_PATH itself holds the checkouts: left as it is
