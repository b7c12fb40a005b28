"""The deploy's digest cache (steps/bucket/digests.py, issue 21): the MD5 it gives is always the file's own,
whether it came from the file's identity, from content seen before, or was computed; in doubt it reads."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from steps.bucket.build_folder import open_build_folder, scan_build
from steps.bucket.digests import FILE_NAME, DigestCache, cache_folder_for


def build(dist: Path, pages: int = 20, changed: int | None = None) -> None:
    """A build as Astro leaves it: the folder emptied and every file written again (new inodes, new times)."""
    shutil.rmtree(dist, ignore_errors=True)
    (dist / "_astro").mkdir(parents=True)
    for number in range(pages):
        text = f"<h1>page {number}</h1>{'changed' if number == changed else ''}" + "x" * 3000
        (dist / f"page-{number}.html").write_text(text)
    (dist / "_astro" / "site.css").write_text("body { color: blue }\n" * 100)


def scan(checkout: Path) -> tuple[dict[str, str], DigestCache]:
    digests = DigestCache.load(cache_folder_for(checkout))
    with open_build_folder(checkout / "dist", checkout) as root:
        files = scan_build(root, checkout / "dist", None, digests).files
    digests.save()
    return {key: file.md5 for key, file in files.items()}, digests


def true_md5s(dist: Path) -> dict[str, str]:
    return {
        str(path.relative_to(dist)): hashlib.md5(path.read_bytes()).hexdigest()
        for path in dist.rglob("*")
        if path.is_file()
    }


@pytest.fixture
def checkout(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (tmp_path / ".site.git").mkdir(mode=0o700)  # the repository beside the checkout: where the cache lives
    return site


def test_a_rebuild_computes_only_the_changed_content(checkout):
    build(checkout / "dist")
    first, digests = scan(checkout)
    assert first == true_md5s(checkout / "dist") and digests.counts.computed == 21
    build(checkout / "dist", changed=7)
    again, digests = scan(checkout)
    assert again == true_md5s(checkout / "dist")
    assert (digests.counts.computed, digests.counts.known_content, digests.counts.unread) == (1, 20, 0)


def test_an_untouched_build_is_not_read_again(checkout):
    build(checkout / "dist")
    scan(checkout)
    again, digests = scan(checkout)
    assert again == true_md5s(checkout / "dist") and digests.counts.unread == 21


def test_content_changed_in_place_with_its_times_put_back_is_read_again(checkout):
    build(checkout / "dist")
    first, _ = scan(checkout)
    page = checkout / "dist" / "page-3.html"
    before = page.stat()
    page.write_text(page.read_text().replace("page 3", "PAGE 3"))  # same size, same inode
    os.utime(page, ns=(before.st_atime_ns, before.st_mtime_ns))  # the change time cannot be put back
    again, digests = scan(checkout)
    assert again["page-3.html"] == hashlib.md5(page.read_bytes()).hexdigest() != first["page-3.html"]
    assert digests.counts.computed == 1


@pytest.mark.parametrize("kept", ["not json", '{"format": 99}', '{"format": 1, "byIdentity": 5}', ""])
def test_a_cache_in_doubt_is_started_afresh(checkout, kept):
    build(checkout / "dist")
    scan(checkout)
    (checkout.parent / ".site.git" / "webordinary" / FILE_NAME).write_text(kept)
    again, digests = scan(checkout)
    assert again == true_md5s(checkout / "dist") and digests.counts.computed == 21


def test_no_cache_without_a_repository_of_ours_beside_the_checkout(tmp_path, checkout):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / ".site.git").rmdir()
    (tmp_path / ".site.git").symlink_to(elsewhere)  # a link: never a place we write to
    assert cache_folder_for(checkout) is None
    build(checkout / "dist")
    first, _ = scan(checkout)
    assert first == true_md5s(checkout / "dist") and not any(elsewhere.iterdir())
    if os.geteuid() == 0:
        (tmp_path / ".site.git").unlink()
        (tmp_path / ".site.git").mkdir()
        os.chown(tmp_path / ".site.git", 12345, 12345)  # not ours: someone else could have written it
        assert cache_folder_for(checkout) is None


def test_the_cache_holds_the_last_build_only(checkout):
    build(checkout / "dist", pages=30)
    scan(checkout)
    build(checkout / "dist", pages=5)
    scan(checkout)
    reloaded = DigestCache.load(cache_folder_for(checkout))
    assert len(reloaded.by_identity) == 6 and len(reloaded.md5_of_content) == 6
