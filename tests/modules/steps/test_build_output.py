"""The build step's output folder (steps/build.py): only a real folder of this build passes, and what
stands in its place before the build (a link, a file) is removed, never followed."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from helpers import message

from steps import build
from steps.base import StepContext, StepError
from steps.git.repo import Git
from supervisor.contract.command import parse_command
from supervisor.contract.config import load_config

# The build: writes index.html into BUILD_DIR, or makes BUILD_DIR a link to ../outside.
BUILD_SCRIPT = """
import os, sys
folder = sys.argv[1]
if sys.argv[2] == "link":
    os.symlink(os.path.abspath("../outside"), folder)
else:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "index.html"), "w") as out:
        out.write("<p>built")
"""


def build_context(tmp_path: Path, build_dir: str, how: str) -> StepContext:
    script = tmp_path / "build.py"
    script.write_text(BUILD_SCRIPT)
    checkout = tmp_path / "site"
    checkout.mkdir(exist_ok=True)
    env = {
        "WORKSPACE_PATH": str(tmp_path),
        "BUILD_DIR": build_dir,
        "BUILD_COMMAND": f"{sys.executable} {script} {build_dir} {how}",
    }
    config = load_config(env, require_input_queue=False)
    command = parse_command(json.dumps(message()), "https://git.example.invalid/site.git")
    return StepContext(config=config, command=command, checkout=checkout, git=Git(checkout, config))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the checkout, as the rest of the workspace would be."""
    folder = tmp_path / "outside"
    (folder / "dist").mkdir(parents=True)
    (folder / "keep.txt").write_text("another tenant")
    (folder / "dist" / "keep.txt").write_text("another build")
    return folder


def test_a_build_folder_that_is_a_link_fails_the_build(tmp_path, outside):
    ctx = build_context(tmp_path, "dist", "link")
    with pytest.raises(StepError) as failure:
        build.run(ctx)
    assert failure.value.error_code == "BUILD_FAILED"
    assert "build folder dist/ is a symbolic link, not a folder" in str(failure.value)
    assert not ctx.build_ok


def test_a_link_where_the_build_folder_goes_is_removed_not_built_through(tmp_path, outside):
    ctx = build_context(tmp_path, "dist", "write")
    (ctx.checkout / "dist").symlink_to(outside, target_is_directory=True)  # left by the agent
    assert build.run(ctx).status == "ok"
    assert not (ctx.checkout / "dist").is_symlink()
    assert (ctx.checkout / "dist" / "index.html").read_text() == "<p>built"
    assert sorted(p.name for p in outside.iterdir()) == ["dist", "keep.txt"]


def test_a_file_where_the_build_folder_goes_is_removed(tmp_path):
    ctx = build_context(tmp_path, "dist", "write")
    (ctx.checkout / "dist").write_text("not a folder")
    assert build.run(ctx).status == "ok"
    assert (ctx.checkout / "dist" / "index.html").is_file()


def test_a_build_folder_under_a_link_is_neither_removed_nor_built(tmp_path, outside):
    ctx = build_context(tmp_path, "out/dist", "write")
    (ctx.checkout / "out").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StepError) as failure:
        build.run(ctx)
    assert failure.value.error_code == "BUILD_FAILED"
    assert "is under a symbolic link" in str(failure.value)
    assert (outside / "dist" / "keep.txt").read_text() == "another build"  # the old code removed it (as root)
    assert not (outside / "dist" / "index.html").exists()


def test_a_failed_warm_build_leaves_the_cold_build_what_is_left_of_the_timeout(tmp_path, monkeypatch):
    """BUILD_TIMEOUT_SECONDS bounds the step: a warm build that failed after 1 s leaves the cold one 1 s of 2."""
    script = tmp_path / "slow_build.py"
    script.write_text("import os, time\ntime.sleep(1.5)\nos.makedirs('dist')\nopen('dist/index.html', 'w').close()\n")
    (tmp_path / "site").mkdir()
    env = {
        "WORKSPACE_PATH": str(tmp_path),
        "BUILD_MODE": "warm",
        "BUILD_TIMEOUT_SECONDS": "2",
        "BUILD_COMMAND": f"{sys.executable} {script}",
    }
    config = load_config(env, require_input_queue=False)
    command = parse_command(json.dumps(message()), "https://git.example.invalid/site.git")
    ctx = StepContext(config=config, command=command, checkout=tmp_path / "site", git=Git(tmp_path / "site", config))

    def fails_slowly(*_: object) -> None:
        time.sleep(1.0)
        raise build.warm.WarmUnavailable("the warm build failed: the page does not compile")

    monkeypatch.setattr(build, "why_not_warm", lambda *_: None)
    monkeypatch.setattr(build.warm, "build", fails_slowly)
    with pytest.raises(StepError, match="did not finish within 2 s"):  # the limit set, not what was left
        build.run(ctx)
