"""`npm ci` runs only when package-lock.json changed since the last install in that checkout."""

from __future__ import annotations

import json
import subprocess

from steps.processes.deps import STAMP_NAME, ensure_dependencies


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
