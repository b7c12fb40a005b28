"""The pure planner (steps/bucket/plan.py): what to upload, skip and delete, and in which order."""

from __future__ import annotations

from pathlib import Path

from bucket_helpers import (
    md5,
)
from hypothesis import given
from hypothesis import strategies as st

from steps.bucket.plan import LocalFile, RemoteObject, keys_needing_stored_md5, make_plan

# ---------------------------------------------------------------- the pure planner


def local(key: str, body: bytes) -> LocalFile:
    return LocalFile(key, Path("/build", key), len(body), md5(body))


def test_plan_compares_md5_with_single_part_etags_and_sorts_assets_before_pages():
    built = {k: local(k, b) for k, b in {"index.html": b"new", "_astro/a.css": b"a", "robots.txt": b"r"}.items()}
    remote = {
        "index.html": RemoteObject("index.html", md5(b"old"), 3),  # same size, other content
        "_astro/a.css": RemoteObject("_astro/a.css", md5(b"a").upper(), 1),  # case does not matter
        "old/index.html": RemoteObject("old/index.html", md5(b"x"), 1),
    }
    plan = make_plan(built, remote)
    assert [(a.key, a.reason) for a in plan.assets] == [("robots.txt", "new")]
    assert [(a.key, a.reason) for a in plan.pages] == [("index.html", "content changed (md5 differs from ETag)")]
    assert [a.key for a in plan.skips] == ["_astro/a.css"]
    assert [(a.key, a.verb) for a in plan.deletes] == [("old/index.html", "delete")]
    assert plan.bytes_to_send == 4
    assert [a.key for a in plan.actions()] == ["robots.txt", "index.html", "_astro/a.css", "old/index.html"]


def test_plan_uses_the_stored_md5_for_multipart_objects():
    built = {k: local(k, b"x" * 10) for k in ("same", "changed", "unknown", "resized")}
    remote = {
        "same": RemoteObject("same", "abc-2", 10, stored_md5=md5(b"x" * 10)),
        "changed": RemoteObject("changed", "abc-2", 10, stored_md5=md5(b"y" * 10)),
        "unknown": RemoteObject("unknown", "abc-2", 10),  # uploaded by someone else (aws s3 sync)
        "resized": RemoteObject("resized", "abc-2", 99),
    }
    reasons = {a.key: (a.verb, a.reason) for a in make_plan(built, remote).actions()}
    assert reasons == {
        "same": ("skip", "unchanged (md5 matches stored md5)"),
        "changed": ("upload", "content changed (md5 differs from stored md5)"),
        "unknown": ("upload", "multipart object without a stored md5"),
        "resized": ("upload", "size changed (99 -> 10 bytes)"),
    }


def test_only_same_size_multipart_objects_need_a_head_request():
    built = {k: local(k, b"x" * 10) for k in ("multi", "single", "resized")}
    remote = {
        "multi": RemoteObject("multi", "abc-3", 10),
        "single": RemoteObject("single", md5(b"q"), 10),
        "resized": RemoteObject("resized", "abc-3", 11),
        "stale": RemoteObject("stale", "abc-3", 10),
    }
    assert keys_needing_stored_md5(built, remote) == ["multi"]


def test_force_uploads_everything_and_still_deletes_stale_objects():
    built = {"a.css": local("a.css", b"a")}
    remote = {"a.css": RemoteObject("a.css", md5(b"a"), 1), "gone.txt": RemoteObject("gone.txt", md5(b"g"), 1)}
    plan = make_plan(built, remote, force=True)
    assert [(a.key, a.reason) for a in plan.uploads] == [("a.css", "forced")]
    assert [a.key for a in plan.deletes] == ["gone.txt"]


bodies = st.binary(max_size=3)


@given(
    st.dictionaries(st.sampled_from([f"p{i}.html" for i in range(4)] + [f"a{i}.css" for i in range(4)]), bodies),
    st.dictionaries(st.sampled_from([f"p{i}.html" for i in range(6)] + [f"a{i}.css" for i in range(6)]), bodies),
)
def test_plan_properties(built_bodies: dict[str, bytes], remote_bodies: dict[str, bytes]):
    built = {k: local(k, b) for k, b in built_bodies.items()}
    remote = {k: RemoteObject(k, md5(b), len(b)) for k, b in remote_bodies.items()}
    plan = make_plan(built, remote)
    uploads, skips = {a.key for a in plan.uploads}, {a.key for a in plan.skips}
    assert uploads | skips == set(built) and not uploads & skips
    assert skips == {k for k in built if remote_bodies.get(k) == built_bodies[k]}
    assert {a.key for a in plan.deletes} == set(remote) - set(built)
    assert all(a.key.endswith(".html") for a in plan.pages)
    assert not any(a.key.endswith(".html") for a in plan.assets)
