"""The job identity of a workspace: stable, never shared with another workspace, within JOB_UID_RANGE."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from steps.job.identity import identity_for


def checkout(root: Path, client: str) -> Path:
    return root / client / "u1" / "site"


def test_each_workspace_keeps_its_own_uid_even_when_their_hashes_collide(tmp_path):
    tiny = (300_000, 300_001)  # two ids: whatever the hashes, the second workspace must get the other one
    a = identity_for(checkout(tmp_path, "acme"), str(tmp_path), tiny)
    b = identity_for(checkout(tmp_path, "globex"), str(tmp_path), tiny)
    assert {a.uid, b.uid} == {300_000, 300_001} and a.gid == a.uid
    assert identity_for(checkout(tmp_path, "acme"), str(tmp_path), tiny) == a  # stable
    assert a.home == tmp_path / ".jobs" / str(a.uid)
    with pytest.raises(RuntimeError, match="no free uid"):
        identity_for(checkout(tmp_path, "initech"), str(tmp_path), tiny)
    records = json.loads((tmp_path / ".supervisor" / "job-ids.json").read_text())
    assert records == {"acme/u1/site": a.uid, "globex/u1/site": b.uid}
    assert (tmp_path / ".supervisor").stat().st_mode & 0o777 == 0o700


def test_a_uid_outside_a_new_range_is_chosen_again(tmp_path):
    old = identity_for(checkout(tmp_path, "acme"), str(tmp_path), (300_000, 300_099))
    new = identity_for(checkout(tmp_path, "acme"), str(tmp_path), (400_000, 400_099))
    assert 300_000 <= old.uid <= 300_099 and 400_000 <= new.uid <= 400_099


def test_the_same_workspace_under_two_workspace_paths_gets_two_uids(tmp_path):
    """Two supervisors of one host, each with its own WORKSPACE_PATH: their registries do not see each
    other, so only the first choice keeps `acme/u1/site` of one from sharing a uid with the other's."""
    wide = (200_000, 1_199_999)
    first = identity_for(checkout(tmp_path / "one", "acme"), str(tmp_path / "one"), wide)
    second = identity_for(checkout(tmp_path / "two", "acme"), str(tmp_path / "two"), wide)
    assert first.uid != second.uid
