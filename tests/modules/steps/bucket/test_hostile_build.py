"""A build folder written by code we did not write: the deploy publishes only its regular files, reached
without following any link, and never a folder that is itself a link (steps/bucket/deploy_*.py)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from bucket_helpers import POLICY, bucket_bodies, context, write_build

from steps import deploy
from steps.base import StepError
from steps.bucket import build_folder, deploy_hash
from supervisor.contract.config import Config, load_config


def config_for(aws_env: dict[str, str], workspace: Path, bucket: str, **env: str) -> Config:
    values = {**aws_env, "WORKSPACE_PATH": str(workspace), "S3_BUCKET": bucket, **env}
    return load_config(values, require_input_queue=False)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace root with a secret and another tenant's checkout beside ours (`site`)."""
    (tmp_path / "secret.txt").write_text("host secret")
    write_build(tmp_path / "other" / "dist", {"index.html": b"another tenant"})
    (tmp_path / "site").mkdir()
    return tmp_path


@pytest.mark.parametrize("strategy", ["hash", "aws-cli"])
def test_a_build_folder_that_is_a_link_is_not_deployed(aws_env, s3, bucket, workspace, strategy):
    checkout = workspace / "site"
    (checkout / "dist").symlink_to("..", target_is_directory=True)  # dist -> the workspace root
    config = config_for(aws_env, workspace, bucket, DEPLOY_STRATEGY=strategy)
    with pytest.raises(StepError) as failure:
        deploy.run(context(config, checkout))
    assert failure.value.error_code == "DEPLOY_FAILED"
    assert "is a symbolic link, not a folder: nothing deployed" in str(failure.value)
    assert bucket_bodies(s3, bucket) == {}


@pytest.mark.parametrize("strategy", ["hash", "aws-cli"])
def test_a_build_folder_under_a_link_is_not_deployed(aws_env, s3, bucket, workspace, strategy):
    checkout = workspace / "site"
    (checkout / "out").symlink_to(workspace / "other", target_is_directory=True)  # out/dist: the other tenant's
    config = config_for(aws_env, workspace, bucket, DEPLOY_STRATEGY=strategy, BUILD_DIR="out/dist")
    with pytest.raises(StepError) as failure:
        deploy.run(context(config, checkout))
    assert failure.value.error_code == "DEPLOY_FAILED"
    assert "is under a symbolic link" in str(failure.value)
    assert bucket_bodies(s3, bucket) == {}


def plant_odd_entries(build: Path, workspace: Path) -> list[str]:
    """Everything but regular files, and names S3 cannot take; returns their keys."""
    (build / "alias.html").symlink_to("index.html")  # a link, even one inside the build
    (build / "assets").symlink_to("_astro", target_is_directory=True)
    (build / "leak.txt").symlink_to(workspace / "secret.txt")
    os.mkfifo(build / "pipe.html")
    os.mknod(build / "socket", stat.S_IFSOCK | 0o600)
    os.mkdir(os.fsencode(build / "_astro") + b"/bad-\xff")  # a folder whose name is not UTF-8
    with open(os.fsencode(build) + b"/bad-\xfe.html", "w") as out:
        out.write("unnamable")
    planted = ["alias.html", "assets", "leak.txt", "pipe.html", "socket", "_astro/bad-\\xff", "bad-\\xfe.html"]
    try:
        os.mknod(build / "device", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
        planted.append("device")
    except PermissionError:
        pass  # creating a device needs CAP_MKNOD
    return planted


def test_only_regular_files_are_deployed_and_each_refusal_is_warned(aws_env, s3, bucket, workspace, caplog):
    checkout = workspace / "site"
    files = {"index.html": b"<p>home", "_astro/app.js": b"let a;", "about/index.html": b"<p>about"}
    build = write_build(checkout / "dist", files)
    planted = plant_odd_entries(build, workspace)
    caplog.set_level(logging.WARNING, logger="steps.deploy")
    result = deploy.run(context(config_for(aws_env, workspace, bucket), checkout))
    assert result.status == "ok", result
    assert bucket_bodies(s3, bucket) == files
    assert result.details["refused"] == len(planted)
    refusals = [r for r in caplog.records if r.getMessage().startswith("not deploying")]
    assert sorted(r.key for r in refusals) == sorted(planted)
    assert all("only regular files are published" in r.getMessage() or "UTF-8" in r.getMessage() for r in refusals)


def test_a_build_of_only_links_deploys_nothing(config, s3, bucket, workspace):
    build = workspace / "site" / "dist"
    build.mkdir()
    (build / "index.html").symlink_to(workspace / "secret.txt")
    with pytest.raises(StepError) as failure:
        deploy_hash.deploy_build(build, bucket, deploy_hash.make_client(config), POLICY)
    assert "is empty (1 refused): nothing deployed" in str(failure.value)
    assert bucket_bodies(s3, bucket) == {}


@pytest.mark.parametrize("swap", ["link", "new file"])
def test_a_file_swapped_after_it_was_hashed_is_not_uploaded(config, s3, bucket, workspace, monkeypatch, swap):
    build = write_build(workspace / "site" / "dist", {"index.html": b"<p>home", "about/index.html": b"<p>about"})
    page = build / "about" / "index.html"
    hashed = deploy_hash.keys_needing_stored_md5  # called once the build is hashed, before any upload

    def swap_then_compare(*args: Any) -> list[str]:
        page.unlink()
        if swap == "link":
            page.symlink_to(workspace / "secret.txt")
        else:
            page.write_text("<p>not what was hashed")
        return hashed(*args)

    monkeypatch.setattr(deploy_hash, "keys_needing_stored_md5", swap_then_compare)
    with pytest.raises(StepError) as failure:
        deploy_hash.deploy_build(build, bucket, deploy_hash.make_client(config), POLICY)
    assert failure.value.error_code == "DEPLOY_FAILED"
    why = "Too many levels of symbolic links" if swap == "link" else "no longer the file that was hashed"
    assert why in str(failure.value)
    assert bucket_bodies(s3, bucket).get("about/index.html") is None


def test_a_fifo_swapped_in_after_the_listing_is_refused_without_blocking(workspace):
    build = write_build(workspace / "site" / "dist", {"index.html": b"<p>home"})
    os.mkfifo(build / "late.html")
    with build_folder.open_build_folder(build) as root:
        assert build_folder.read_built_file(root, "late.html", "late.html", build) == (
            "not a regular file when opened, only regular files are published"
        )
