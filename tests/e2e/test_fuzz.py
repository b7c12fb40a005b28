"""The fuzz bench's short variant: 60 hostile bodies through the real supervisor (bench/fuzz.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT

pytestmark = pytest.mark.e2e


def test_hostile_bodies_are_all_accounted_for_and_change_nothing_they_should_not():
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fuzz.py"), "--count", "60", "--json"],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=ROOT,
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["problems"] == [], result
    assert result["invalid"] > 35 and result["valid"] >= 3 and result["deadLettered"] == result["invalid"]
    assert completed.returncode == 0
