"""`npm ci` runs only when package-lock.json changed since the last install in that checkout."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from steps.job.untrusted import write_inside
from steps.processes.deps import STAMP_NAME, _manifest_digest, ensure_dependencies


def write_package(folder, version: str) -> None:
    (folder / "package.json").write_text(json.dumps({"name": "tiny", "version": version, "private": True}))
    subprocess.run(
        ["npm", "install", "--package-lock-only", "--no-audit", "--no-fund"],
        cwd=folder,
        check=True,
        capture_output=True,
    )


def test_install_runs_once_per_lockfile(tmp_path):
    write_package(tmp_path, "1.0.0")
    assert ensure_dependencies(tmp_path) == "installed"
    assert (tmp_path / "node_modules" / STAMP_NAME).is_file()
    assert ensure_dependencies(tmp_path) == "up-to-date"
    write_package(tmp_path, "1.0.1")  # the lockfile changed
    assert ensure_dependencies(tmp_path) == "installed"
    assert ensure_dependencies(tmp_path) == "up-to-date"


def test_deleted_node_modules_means_a_new_install(tmp_path):
    write_package(tmp_path, "1.0.0")
    ensure_dependencies(tmp_path)
    subprocess.run(["rm", "-rf", str(tmp_path / "node_modules")], check=True)
    assert ensure_dependencies(tmp_path) == "installed"


def test_not_an_npm_project(tmp_path):
    assert ensure_dependencies(tmp_path) == "not-npm"


def test_what_the_job_planted_is_neither_followed_nor_written_through(tmp_path):
    """The checkout is the job's: a lockfile that is a link is never read (nor ever "up to date"), and a
    node_modules that is a link does not take our stamp somewhere else."""
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    site.mkdir()
    elsewhere.mkdir()
    write_package(site, "1.0.0")
    (elsewhere / "secret").write_text("not for the job")
    real_lock = site / "package-lock.json"
    real_lock.rename(site / "real-lock.json")
    real_lock.symlink_to(elsewhere / "secret")
    digest, argv = _manifest_digest(site)
    assert argv[1] == "ci" and digest != hashlib.sha256(b"not for the job").hexdigest()  # the target is not read
    (site / "node_modules").symlink_to(elsewhere)
    with pytest.raises(OSError):  # refused: the folder is a link
        write_inside(site / "node_modules", STAMP_NAME, b"x")
    assert sorted(p.name for p in elsewhere.iterdir()) == ["secret"]


def test_a_large_file_is_written_whole(tmp_path):
    data = bytes(range(256)) * 40_000  # 10 MB
    write_inside(tmp_path, "big", data)
    assert (tmp_path / "big").read_bytes() == data and [p.name for p in tmp_path.iterdir()] == ["big"]
