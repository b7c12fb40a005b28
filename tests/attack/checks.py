"""What a contained attack must have left, checked the same way on this machine (tests/e2e/test_containment.py)
and through the image (tests/image/test_image.py): the probe's reports read back from the bucket, the
markers planted git code would leave, the remote, other tenants' files, the job's processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psutil
from helpers import git, git_out

SECRETS = {
    "GITHUB_TOKEN": "ghp_canary_containment_51",
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-77",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/canary-task-role-93",
    "ANTHROPIC_API_KEY": "sk-ant-canary-model-12",
}
# Reached by the job and allowed: the agent's own model key is its own (and its Bash calls' parent's).
AGENT_MAY_SEE = ("ANTHROPIC_API_KEY=",)
MUST_NOT_REACH = (
    "realRepository",
    "ledger",
    "otherTenant",
    "supervisorFolder",
    "statusFile",
    "otherThreads",
    "signalWorker",
)


def bucket_objects(s3: Any, bucket: str) -> dict[str, bytes]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def markers_folder(tmp_path: Path) -> Path:
    """Where planted git code would leave its marks (it would run as the worker), and an evil remote."""
    markers = tmp_path / "markers"
    markers.mkdir()
    run = markers / "run.sh"
    run.write_text(f'#!/bin/sh\necho "$WEBORDINARY_GIT_TOKEN" > {markers}/ran-"$1"\ncat >/dev/null\n')
    run.chmod(0o755)
    git(tmp_path, "init", "--quiet", "--bare", str(markers / "evil.git"))
    return markers


def reports(objects: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    return {
        phase: json.loads(objects[f"attack-{phase}.json"])
        for phase in ("agent", "build", "postbuild")
        if f"attack-{phase}.json" in objects
    }


def secrets_seen(finding: dict[str, Any], allowed: tuple[str, ...]) -> list[str]:
    """The secrets a finding's detail names (`pid:NAME=value`), less those the phase may see."""
    words = finding["detail"].split() if finding["reached"] else []
    return [w for w in words if "=" in w and not any(w.split(":", 1)[-1].startswith(a) for a in allowed)]


def assert_contained(
    attacked: dict[str, Any],
    objects: dict[str, bytes],
    *,
    markers: Path,
    site_remote: Path,
    main_before: str,
    workspace: Path,
    victim_objects: dict[str, bytes],
    sandboxed: bool,
    warm: bool = False,
    processes: list[tuple[int, int]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every containment check on one attacked command; returns the probe's reports. `processes`: (pid, uid)
    of every live process where the job ran, seen once the command was answered (default: this host's, now;
    a container has PID numbers of its own, and is gone by the time the checks run)."""
    # The command itself still works: edited, built, deployed, pushed.
    assert attacked["success"] is True, attacked
    assert git_out(site_remote, "rev-parse", "thread-chat-1") == attacked["commit"]
    found = reports(objects)
    assert set(found) == {"agent", "build", "postbuild"}, sorted(objects)
    job_uid = found["agent"]["uid"]
    build_uid = found["build"]["uid"]
    assert job_uid != 0 and build_uid != 0  # a job identity, not the worker's
    # A warm server (BUILD_MODE=warm) has a uid of its own: the agent can neither signal nor trace it.
    assert (build_uid != job_uid) if warm else (build_uid == job_uid)

    # No secret in any environment the job can read, PID 1's included, nor in its own (but the model key).
    for phase, report in found.items():
        allowed = AGENT_MAY_SEE if phase == "agent" else ()
        for name in MUST_NOT_REACH:
            assert report["findings"][name]["reached"] is False, (phase, name, report["findings"][name])
        for name in ("pid1Environment", "otherEnvironments"):
            assert secrets_seen(report["findings"][name], allowed) == [], (phase, name, report["findings"][name])
        own = report["findings"]["ownEnvironment"]
        assert own["reached"] is False or all(w.startswith(allowed) for w in own["detail"].split()), (phase, own)
    everything = b"".join(objects.values()).decode(errors="replace")
    for name, value in SECRETS.items():
        if name != "ANTHROPIC_API_KEY":
            assert value not in everything, f"{name} was published"

    # Planted git code never ran, the push went where we said, and main was never pushed.
    assert sorted(p.name for p in markers.iterdir()) == ["evil.git", "run.sh"]
    assert git_out(markers / "evil.git", "for-each-ref") == ""
    assert git_out(site_remote, "rev-parse", "main") == main_before
    assert not (workspace / "acme" / "u1" / ".site.git" / "hooks" / "pre-push").exists()

    # No other tenant's checkout or site, no forged record, no link out of the build.
    assert not (workspace / "globex" / "u1" / "site" / "src" / "pages" / "pwned.astro").exists()
    assert not any("pwned" in key for key in victim_objects)
    assert not (workspace / ".supervisor" / "answered" / "forged.sending").exists()
    assert not {key for key in objects if key.startswith(("hostname", "supervisor", "workspace"))}
    assert attacked["deploy"]["refused"] == 3

    # The daemon the build left is gone (its pid is the sandbox's own in a PID namespace); nothing of the job
    # uid runs.
    live = host_processes() if processes is None else processes
    if not sandboxed:
        daemon = int(found["postbuild"]["findings"]["daemon"]["detail"])
        assert daemon not in {pid for pid, _ in live}, daemon
    # (With a warm server, that is after the supervisor stopped, which ends the server too.)
    assert not [(pid, uid) for pid, uid in live if uid in {job_uid, build_uid}]
    return found


def host_processes() -> list[tuple[int, int]]:
    """(pid, real uid) of every live process of this host, zombies left out."""
    return [
        (p.pid, p.info["uids"].real)
        for p in psutil.process_iter(["uids", "status"])
        if p.info["uids"] and p.info["status"] != psutil.STATUS_ZOMBIE
    ]
