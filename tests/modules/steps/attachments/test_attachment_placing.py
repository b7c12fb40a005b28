"""steps/attachments against moto's S3 server and a real checkout: fetched, checked by their bytes, named
safely and placed under public/uploads/{commandId}/ all at once, or refused with nothing left behind."""

from __future__ import annotations

import json
import os
import stat
import struct
import subprocess
from pathlib import Path

import pytest
from helpers import GIT_ENV, message, tiny_png

from steps.attachments import fetch as fetching
from steps.attachments.note import with_attachment_note
from steps.attachments.prepare import place_attachments
from steps.attachments.sources import AttachmentRefused, Source
from steps.base import StepContext, StepError
from steps.git.repo import Git
from supervisor.contract.command import parse_command
from supervisor.contract.config import load_config

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64
GIF = b"GIF89a" + b"\x01\x00\x01\x00\x00\x00\x00;"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 40
AVIF = struct.pack(">I", 24) + b"ftypmif1\x00\x00\x00\x00mif1avif" + b"\x00" * 40
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="4"><rect width="4" height="4"/></svg>'
HTML = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"
ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 64


@pytest.fixture
def buckets(s3, bucket_prefix):
    names = {"main": f"{bucket_prefix}-att", "other": f"{bucket_prefix}-more", "stranger": f"{bucket_prefix}-no"}
    for name in names.values():
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    return names


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A site checkout laid out as the worker keeps one: the repository beside it (.site.git)."""
    site = tmp_path / "ws" / "acme" / "u1" / "site"
    (site / "public").mkdir(parents=True)
    (site / "public" / "robots.txt").write_text("User-agent: *\n")
    env = {**os.environ, **GIT_ENV, "GIT_DIR": str(site.parent / ".site.git"), "GIT_WORK_TREE": str(site)}
    for args in (["init", "-q", "--initial-branch=main"], ["add", "--all"], ["commit", "-q", "-m", "site"]):
        subprocess.run(["git", *args], cwd=site, env=env, check=True, capture_output=True)
    return site


@pytest.fixture
def context(aws_env, buckets, checkout):
    def make(attachments, command_id="cmd-1", **variables):
        env = {
            **aws_env,
            "WORKSPACE_PATH": str(checkout.parents[2]),
            "ATTACHMENTS_BUCKET": buckets["main"],
            "ATTACHMENTS_BUCKETS": buckets["other"],
            **variables,
        }
        config = load_config(env, require_input_queue=False)
        body = message(commandId=command_id, attachments=attachments)
        command = parse_command(json.dumps(body), "/srv/git/site.git")
        return StepContext(config=config, command=command, checkout=checkout, git=Git(checkout, config))

    return make


def put(s3, bucket, key, data):
    s3.put_object(Bucket=bucket, Key=key, Body=data)


def untouched(checkout: Path) -> None:
    """Nothing of a refused placement is left: no uploads folder, no staged file, git sees no change."""
    assert sorted(p.name for p in (checkout / "public").iterdir()) == ["robots.txt"]
    staging = checkout.parent / ".site.git" / "webordinary" / "attachments"
    assert not staging.exists() or list(staging.iterdir()) == []
    env = {**os.environ, "GIT_DIR": str(checkout.parent / ".site.git"), "GIT_WORK_TREE": str(checkout)}
    status = subprocess.run(["git", "status", "--porcelain"], cwd=checkout, env=env, capture_output=True, text=True)
    assert status.stdout == ""


def test_every_image_kind_is_placed_with_a_safe_name_and_listed(s3, buckets, context, checkout):
    png = tiny_png()
    put(s3, buckets["main"], "in/logo.png", png)
    put(s3, buckets["main"], "in/photo.png", JPEG)  # named .png, bytes of a JPEG: the bytes win
    put(s3, buckets["other"], "x/anim", GIF)
    put(s3, buckets["main"], "y/pic.webp", WEBP)
    put(s3, buckets["main"], "z/pic.avif", AVIF)
    ctx = context(
        [
            {"key": "in/logo.png", "name": "../../etc/Logo Big.png", "contentType": "text/html"},
            {"key": "in/photo.png", "name": "Photo.png"},
            {"s3Uri": f"s3://{buckets['other']}/x/anim", "name": ".hidden"},
            {"key": "y/pic.webp", "name": "café.webp"},
            {"key": "z/pic.avif", "name": "CAFÉ.avif"},
        ],
        ATTACHMENTS_MAX_FILES="5",
    )
    placed = place_attachments(ctx)
    assert [item["name"] for item in placed] == ["Logo-Big.png", "Photo.jpg", "hidden.gif", "cafe.webp", "CAFE.avif"]
    first = placed[0]
    assert first == {
        "name": "Logo-Big.png",
        "path": "public/uploads/cmd-1/Logo-Big.png",
        "sitePath": "/uploads/cmd-1/Logo-Big.png",
        "bytes": len(png),
        "contentType": "image/png",  # from the bytes; the sender's text/html is ignored
        "sentAs": "../../etc/Logo Big.png",
    }
    assert [item["contentType"] for item in placed[1:]] == ["image/jpeg", "image/gif", "image/webp", "image/avif"]
    folder = checkout / "public" / "uploads" / "cmd-1"
    assert (folder / "Logo-Big.png").read_bytes() == png and (folder / "Photo.jpg").read_bytes() == JPEG
    # Shared with the job through the checkout's group: folders 2770, files 0660.
    group = checkout.stat().st_gid
    for path in (checkout / "public" / "uploads", folder, *folder.iterdir()):
        info = path.lstat()
        assert info.st_gid == group
        assert stat.S_IMODE(info.st_mode) == (0o2770 if path.is_dir() else 0o660), path
    assert ctx.warnings == []


def test_names_that_collide_or_say_nothing_are_made_unique(s3, buckets, context):
    for key in ("a", "b", "c"):
        put(s3, buckets["main"], key, tiny_png())
    ctx = context([{"key": "a", "name": "pic.png"}, {"key": "b", "name": "PIC.png"}, {"key": "c", "name": "€!"}])
    assert [item["name"] for item in place_attachments(ctx)] == ["pic.png", "PIC-2.png", "attachment-3.png"]


def test_an_unsafe_command_id_gets_a_folder_of_its_own(s3, buckets, context, checkout):
    put(s3, buckets["main"], "a", tiny_png())
    placed = place_attachments(context([{"key": "a"}], command_id="../x y/ü"))
    folder = placed[0]["path"].split("/")[2]
    assert folder.startswith("x-y-u-") and len(folder) == len("x-y-u-") + 8
    assert (checkout / "public" / "uploads" / folder / "a.png").is_file()


@pytest.mark.parametrize(
    ("objects", "attachments", "variables", "reason"),
    [
        ({}, [{"key": "gone.png"}], {}, 'attachments[0] ("gone.png"): it was not found'),
        (
            {"big.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 2048},
            [{"key": "big.png"}],
            {"ATTACHMENTS_MAX_MB": "0.001"},
            "it is 2,056 bytes, above the 1,048 bytes limit (ATTACHMENTS_MAX_MB)",
        ),
        (
            {"page.png": HTML},
            [{"key": "page.png", "name": "page.png"}],
            {},
            'attachments[0] ("page.png"): its bytes are not an image we accept (HTML)',
        ),
        ({"tool.png": ELF}, [{"key": "tool.png"}], {}, "not an image we accept (an ELF executable)"),
        ({"empty.png": b""}, [{"key": "empty.png"}], {}, "it is empty"),
        ({"d.svg": SVG}, [{"key": "d.svg"}], {}, "SVGs are not accepted (ATTACHMENTS_ALLOW_SVG)"),
        (
            {"a.png": tiny_png()},
            [{"key": "a.png"}] * 3,
            {"ATTACHMENTS_MAX_FILES": "2"},
            "3 attachments, at most 2 accepted (ATTACHMENTS_MAX_FILES)",
        ),
        ({"a.png": tiny_png()}, [{"key": "a.png"}], {"ATTACHMENTS_MAX_FILES": "0"}, "at most 0 accepted"),
        (
            {"a.png": tiny_png()},
            [{"key": "a.png"}],
            {"ATTACHMENTS_BUCKET": ""},
            "it gives a key, and ATTACHMENTS_BUCKET is not set",
        ),
    ],
)
def test_a_bad_attachment_refuses_the_command_and_leaves_nothing(
    s3, buckets, context, checkout, objects, attachments, variables, reason
):
    for key, data in objects.items():
        put(s3, buckets["main"], key, data)
    with pytest.raises(StepError) as caught:
        place_attachments(context(attachments, **variables))
    assert caught.value.error_code == "INVALID_ATTACHMENT" and caught.value.ends_command
    assert reason in str(caught.value)
    untouched(checkout)


def test_a_bucket_not_allowed_is_never_read(s3, buckets, context, checkout):
    put(s3, buckets["stranger"], "a.png", tiny_png())
    ctx = context([{"s3Uri": f"s3://{buckets['stranger']}/a.png"}])
    with pytest.raises(
        StepError, match=rf"attachments\[0\] \(\"a.png\"\): bucket {buckets['stranger']} is not allowed"
    ):
        place_attachments(ctx)
    untouched(checkout)


def test_one_bad_attachment_after_good_ones_places_none(s3, buckets, context, checkout):
    put(s3, buckets["main"], "good.png", tiny_png())
    put(s3, buckets["main"], "bad.png", HTML)
    ctx = context([{"key": "good.png"}, {"key": "good.png", "name": "again.png"}, {"key": "bad.png", "name": "x"}])
    with pytest.raises(StepError, match=r'attachments\[2\] \("x"\): its bytes are not an image'):
        place_attachments(ctx)
    untouched(checkout)


def test_an_svg_when_allowed_only_when_it_is_a_plain_picture(s3, buckets, context, checkout):
    put(s3, buckets["main"], "plain.svg", SVG)
    placed = place_attachments(context([{"key": "plain.svg"}], ATTACHMENTS_ALLOW_SVG="true"))
    assert placed[0]["name"] == "plain.svg" and placed[0]["contentType"] == "image/svg+xml"

    scripted = SVG.replace(b"<rect", b"<script>alert(document.cookie)</script><rect")
    put(s3, buckets["main"], "scripted.svg", scripted)
    with pytest.raises(StepError, match="not a plain picture: it holds a <script> element"):
        place_attachments(context([{"key": "scripted.svg"}], command_id="cmd-2", ATTACHMENTS_ALLOW_SVG="true"))
    assert not (checkout / "public" / "uploads" / "cmd-2").exists()


# The checkout is the job's too: what an earlier command planted is never written through ------------------


def test_uploads_as_a_link_to_outside_is_refused_and_never_written_through(s3, buckets, context, checkout, tmp_path):
    put(s3, buckets["main"], "a.png", tiny_png())
    outside = tmp_path / "outside"
    outside.mkdir()
    (checkout / "public" / "uploads").symlink_to(outside)
    with pytest.raises(StepError, match="public/uploads in the checkout is a symbolic link; nothing was written"):
        place_attachments(context([{"key": "a.png"}]))
    assert list(outside.iterdir()) == []
    assert (checkout / "public" / "uploads").is_symlink()


@pytest.mark.parametrize("planted", ["link", "file"])
def test_public_itself_as_a_link_or_a_file_is_refused(s3, buckets, context, checkout, tmp_path, planted):
    put(s3, buckets["main"], "a.png", tiny_png())
    outside = tmp_path / "outside"
    outside.mkdir()
    for child in (checkout / "public").iterdir():
        child.unlink()
    (checkout / "public").rmdir()
    if planted == "link":
        (checkout / "public").symlink_to(outside)
    else:
        (checkout / "public").write_text("not a folder")
    kind = "a symbolic link" if planted == "link" else "not a folder"
    with pytest.raises(StepError, match=f"public in the checkout is {kind}"):
        place_attachments(context([{"key": "a.png"}]))
    assert list(outside.iterdir()) == []


def test_a_planted_command_folder_is_replaced_never_entered(s3, buckets, context, checkout, tmp_path):
    put(s3, buckets["main"], "a.png", tiny_png())
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("theirs")
    (checkout / "public" / "uploads").mkdir()
    (checkout / "public" / "uploads" / "cmd-1").symlink_to(outside)
    place_attachments(context([{"key": "a.png"}]))
    folder = checkout / "public" / "uploads" / "cmd-1"
    assert not folder.is_symlink() and sorted(p.name for p in folder.iterdir()) == ["a.png"]
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["cmd-1"]  # nothing moved aside is left


def test_an_earlier_deliverys_folder_is_replaced_whole(s3, buckets, context, checkout):
    put(s3, buckets["main"], "a.png", tiny_png())
    folder = checkout / "public" / "uploads" / "cmd-1"
    folder.mkdir(parents=True)
    (folder / "stale.png").write_bytes(b"old")
    place_attachments(context([{"key": "a.png"}]))
    assert sorted(p.name for p in folder.iterdir()) == ["a.png"]


def test_a_site_that_ignores_its_uploads_gets_a_warning(s3, buckets, context, checkout):
    put(s3, buckets["main"], "a.png", tiny_png())
    (checkout / ".gitignore").write_text("public/uploads/\n")
    ctx = context([{"key": "a.png"}])
    place_attachments(ctx)
    assert ctx.warnings == [
        "the site's .gitignore ignores public/uploads/cmd-1/a.png: on the preview, but not committed with the command"
    ]


# Reading stops at the limit, whatever S3 said the size was ----------------------------------------------------


class LyingS3:
    """An S3 client whose HEAD says 10 bytes and whose body never ends: what a stream past the limit costs."""

    def __init__(self) -> None:
        self.served = 0
        self.asked_range = ""

    def head_object(self, **_: object) -> dict[str, object]:
        return {"ContentLength": 10, "ETag": '"x"'}

    def get_object(self, **request: object) -> dict[str, object]:
        self.asked_range = str(request["Range"])
        owner = self

        class Endless:
            def read(self, size: int) -> bytes:
                owner.served += size
                return b"\x89PNG\r\n\x1a\n".ljust(size, b"\x00")

            def close(self) -> None:
                pass

        return {"Body": Endless()}


def test_reading_stops_just_past_the_limit_when_the_size_lied(tmp_path):
    client = LyingS3()
    source = Source(0, "bucket", "k.png", None)
    with pytest.raises(AttachmentRefused, match="larger than the 102,400 bytes limit"):
        fetching.fetch(client, source, 100 * 1024, tmp_path / "part")
    assert client.asked_range == f"bytes=0-{100 * 1024}"
    assert client.served <= 100 * 1024 + fetching.CHUNK


def test_the_note_names_each_file_by_its_path_and_site_path():
    placed = [
        {
            "name": "a.png",
            "path": "public/uploads/c/a.png",
            "sitePath": "/uploads/c/a.png",
            "bytes": 9,
            "contentType": "image/png",
            "sentAs": "A photo.png",
        },
    ]
    note = with_attachment_note("Put it on the home page\n", placed)
    assert note.startswith("Put it on the home page\n\nThe person attached 1 file(s)")
    assert '- public/uploads/c/a.png (on the site: /uploads/c/a.png; image/png, 9 bytes; sent as "A photo.png")' in note
    assert with_attachment_note("Same", []) == "Same"
