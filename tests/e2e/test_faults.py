"""The faults bench's short variant (bench/faults.py --quick): SQS and S3 failing behind a proxy, the git
remote gone, the workspace disk full; real supervisor, real workers, real git."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("scenarios", ["sqs,s3", "remote,disk"])  # two halves: they run side by side
def test_each_fault_ends_in_the_outcome_the_contract_names_and_nothing_is_lost(installed_site, scenarios):
    argv = [sys.executable, str(ROOT / "bench" / "faults.py"), "--quick", "--json", "--installed", str(installed_site)]
    completed = subprocess.run([*argv, "--only", scenarios], capture_output=True, text=True, timeout=500, cwd=ROOT)
    assert completed.stdout.strip(), completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["problems"] == [], result
    assert set(result) == {*scenarios.split(","), "problems"}
    if "sqs" in result:
        assert set(result["sqs"]["faults"]) & {"sqs:error", "sqs:drop"} and result["sqs"]["outcomes"] == {"success": 3}
    if "s3" in result:
        assert set(result["s3"]["faults"]) & {"s3:error", "s3:drop"} and result["s3"]["brokenPages"] == []
        assert result["s3"]["outcomes"].get("DEPLOY_FAILED", 0) >= 1  # the outage: failed, the site not broken
    if "remote" in result:
        assert result["remote"]["outcomes"]["offline"] == "PUSH_FAILED" and result["remote"]["lostCommits"] == 0
    if "disk" in result and "skipped" not in result["disk"]:  # a tmpfs needs root
        assert "space" in result["disk"]["fullDiskError"].lower() and result["disk"]["outcomes"]["after"] == "success"
    assert completed.returncode == 0
