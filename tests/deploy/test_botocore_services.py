"""The image keeps botocore's models only of the services in deploy/botocore-services.txt (Dockerfile): every
service our code makes a client for, and every one botocore's credential chain makes a client for, must be on
that list, or the image fails at run time with UnknownServiceError where the tests, run from the full venv,
pass."""

from __future__ import annotations

import re
from pathlib import Path

import botocore
from helpers import ROOT

LIST = ROOT / "deploy" / "botocore-services.txt"
# boto3.client("sqs", ...), Session().client(\n "s3", ...), our own _client("dynamodb")
CLIENT_CALL = re.compile(r"client\(\s*\"([a-z0-9-]+)\"")


def kept_services() -> set[str]:
    lines = (line.strip() for line in LIST.read_text().splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def services_in_code() -> dict[str, str]:
    found: dict[str, str] = {}
    for folder in ("supervisor", "steps", "bin"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and (path.suffix == ".py" or path.parent.name == "bin"):
                for service in CLIENT_CALL.findall(path.read_text(errors="replace")):
                    found.setdefault(service, str(path.relative_to(ROOT)))
    return found


def test_every_service_our_code_calls_keeps_its_model_in_the_image():
    used = services_in_code()
    # The scan must see what we know is there, or a change of style would leave it finding nothing.
    assert {"s3", "sqs", "sts", "dynamodb", "stepfunctions"} <= set(used), used
    missing = {service: where for service, where in used.items() if service not in kept_services()}
    assert not missing, f"add to {LIST.relative_to(ROOT)}: {missing}"


def test_every_kept_service_is_one_botocore_knows():
    models = Path(botocore.__file__).parent / "data"
    unknown = sorted(service for service in kept_services() if not (models / service).is_dir())
    assert not unknown, f"no botocore model named {unknown}"


def test_the_services_botocores_credential_chain_calls_keep_their_models_too():
    """A profile or container whose credentials come from an assumed role, SSO or `aws login` makes botocore
    create a client of its own; a newer botocore may add a provider."""
    creating = re.compile(r"(?:_client_creator|create_nested_client)\(\s*(?:self\._session,\s*)?['\"]([a-z0-9-]+)['\"]")
    package = Path(botocore.__file__).parent
    used = {
        name for module in ("credentials.py", "tokens.py") for name in creating.findall((package / module).read_text())
    }
    assert {"sts", "sso"} <= used, used  # the scan still finds what we know is there
    assert used <= kept_services(), f"add to {LIST.relative_to(ROOT)}: {sorted(used - kept_services())}"
