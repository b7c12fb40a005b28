"""Attachments in deploy/webordinary-edit.yaml: the task role may read (s3:GetObject, nothing else) exactly
the buckets the worker may fetch attachments from, and no statement at all when none are given; the
container gets every ATTACHMENTS_* variable, in values our configuration accepts (cfn-lint:
tests/deploy/test_template.py)."""

from __future__ import annotations

import fnmatch
import re

import boto3
import pytest
from helpers import REGION
from test_template import Resolver, load, task_definition

from supervisor.contract.attachments_config import MIB, AttachmentsConfig
from supervisor.contract.config import load_config

BUCKET = "uploads.{clientId}.example.com"
LISTED = "chat-{clientId}-files,shared-photos"
REQUIRED = {
    "ImageUri": "example/webordinary-edit:1",
    "SecretArn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:edit",
}


def attachment_grants(parameters: dict[str, str]) -> list[dict]:
    template = load()
    rendered = Resolver(template, parameters).resolve(template["Resources"]["TaskRole"])
    statements = rendered["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    return [s for s in statements if s["Sid"].startswith("ReadAttachments")]


def readable(resources: list[str], bucket: str, key: str = "chat/acme/IMG_0001.PNG") -> bool:
    """Whether one of the grants' resources covers the object (IAM's * matches any characters, / included)."""
    return any(fnmatch.fnmatchcase(f"arn:aws:s3:::{bucket}/{key}", resource) for resource in resources)


@pytest.mark.parametrize(("bucket", "listed"), [("", ""), (BUCKET, ""), ("", LISTED), (BUCKET, LISTED)])
def test_the_task_reads_attachments_from_the_buckets_given_and_no_others(aws_env, bucket, listed):
    parameters = {
        **REQUIRED,
        "AttachmentsBucket": bucket,
        "AttachmentsBuckets": listed,
        "AttachmentsMaxFiles": "3",
        "AttachmentsMaxMb": "25",
        "AttachmentsAllowSvg": "true",
    }
    grants = attachment_grants(parameters)
    # Read only: no listing, no writing, one statement per parameter given and none for an empty one.
    expected = {"ReadAttachmentsFromTheAttachmentsBucket"} if bucket else set()
    expected |= {"ReadAttachmentsFromTheListedBuckets"} if listed else set()
    assert {s["Sid"] for s in grants} == expected
    assert all(s["Effect"] == "Allow" and s["Action"] == "s3:GetObject" for s in grants)
    resources = [r for s in grants for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])]
    if listed:
        listed_grant = next(s for s in grants if s["Sid"] == "ReadAttachmentsFromTheListedBuckets")
        assert listed_grant["Resource"] == ["arn:aws:s3:::chat-*-files/*", "arn:aws:s3:::shared-photos/*"]
    # The container passes every variable through, in values our configuration accepts.
    definition = task_definition(parameters)
    ecs = boto3.client("ecs", region_name=REGION, endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    container = ecs.register_task_definition(**definition)["taskDefinition"]["containerDefinitions"][0]
    env = {item["name"]: item["value"] for item in container["environment"]}
    assert env["ATTACHMENTS_BUCKET"] == bucket and env["ATTACHMENTS_BUCKETS"] == listed
    config = load_config(env).attachments
    assert config == AttachmentsConfig(
        bucket=bucket or None,
        buckets=tuple(filter(None, listed.split(","))),
        max_files=3,
        max_bytes=25 * MIB,
        allow_svg=True,
    )
    # Every bucket the worker may fetch from, for any client, is readable; nothing else is.
    for client in ("acme", "b2"):
        allowed = config.allowed_buckets_for(client)
        assert len(allowed) == bool(bucket) + len(tuple(filter(None, listed.split(","))))
        for name in allowed:
            assert readable(resources, name), name
    for other in ("edit.acme.webordinary.com", "uploads.example.com", "chat-acme-other", "shared-photos-2"):
        assert not readable(resources, other), other


def test_without_attachment_parameters_the_task_gets_the_defaults():
    env = {item["name"]: item["value"] for item in task_definition(REQUIRED)["containerDefinitions"][0]["environment"]}
    assert {name: env[name] for name in env if name.startswith("ATTACHMENTS_")} == {
        "ATTACHMENTS_BUCKET": "",
        "ATTACHMENTS_BUCKETS": "",
        "ATTACHMENTS_MAX_FILES": "5",
        "ATTACHMENTS_MAX_MB": "10",
        "ATTACHMENTS_ALLOW_SVG": "false",
    }
    assert load_config(env).attachments == AttachmentsConfig()
    assert attachment_grants(REQUIRED) == []


def test_a_bucket_parameter_cannot_widen_the_read_grant():
    """A wildcard (or anything but bucket-name characters and {clientId}) in a bucket parameter would let the
    task read more than the worker fetches from: the parameters' patterns refuse it."""
    parameters = load()["Parameters"]
    for name in ("AttachmentsBucket", "AttachmentsBuckets"):  # a list's pattern applies to each item
        pattern = re.compile(parameters[name]["AllowedPattern"])
        for good in ("", BUCKET, "shared-photos", "chat-{clientId}-files"):
            assert pattern.fullmatch(good), (name, good)
        for bad in ("*", "uploads-*", "uploads?", "a b", "uploads/chat", "{client}", "arn:aws:s3:::x"):
            assert not pattern.fullmatch(bad), (name, bad)
