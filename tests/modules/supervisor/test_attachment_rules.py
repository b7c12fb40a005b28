"""`attachments` in every message shape, the form of each (exactly one of s3Uri and key, no key that reads
as a path), and the ATTACHMENTS_* variables."""

from __future__ import annotations

import json

import pytest

from supervisor.contract.attachments_config import AttachmentsConfig, load_attachments_config
from supervisor.contract.command import InvalidMessage, parse_command
from supervisor.contract.config import ConfigError

REPO = "/srv/git/site.git"
ONE = [{"s3Uri": "s3://chat-uploads/acme/photo.png", "name": "photo.png", "contentType": "image/png"}]


def shapes(**fields):
    """The same attachments in the three shapes: ours, the anchor's later command shape, the task shape."""
    ours = {"instruction": "x", "commandId": "c1", "chatThreadId": "t1", "clientId": "acme", "userId": "u1"}
    later = {"instruction": "x", "commandId": "c1", "threadId": "t1", "projectId": "acme", "userId": "u1"}
    task = {"taskToken": "tok", "messageId": "c1", "text": "x", "threadId": "t1", "projectId": "acme", "userId": "u1"}
    return [json.dumps({**body, **fields}) for body in (ours, later, task)]


@pytest.mark.parametrize("raw", shapes(attachments=ONE))
def test_every_shape_keeps_its_attachments(raw):
    assert parse_command(raw, REPO).attachments == tuple(ONE)


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ({"name": "a.png"}, "attachments[0] needs s3Uri or key"),
        ({"s3Uri": "s3://bucket-a/k", "key": "k"}, "attachments[0] has both s3Uri and key: give one"),
        ({"s3Uri": "https://example.com/a.png"}, "attachments[0].s3Uri is not an s3://bucket/key URI"),
        ({"s3Uri": "s3://bucket-a"}, "is not an s3://bucket/key URI"),
        ({"s3Uri": "s3://bucket-a/"}, "has a key that has an empty, . or .. part"),
        ({"s3Uri": "s3://Bad_Bucket/k"}, "names a bucket that is not a valid S3 bucket name"),
        ({"s3Uri": "s3://b/k"}, "not a valid S3 bucket name"),
        ({"s3Uri": "s3://bucket-a/../other/k"}, "has a key that has an empty, . or .. part"),
        ({"key": "/etc/passwd"}, "attachments[0].key starts with /"),
        ({"key": "a/../../b.png"}, "attachments[0].key has an empty, . or .. part"),
        ({"key": "a//b.png"}, "empty, . or .. part"),
        ({"key": "./b.png"}, "empty, . or .. part"),
        ({"key": "é" * 600}, "attachments[0].key is longer than 1024 bytes"),
    ],
)
def test_a_malformed_attachment_is_an_invalid_message_in_every_shape(item, reason):
    for raw in shapes(attachments=[item]):
        with pytest.raises(InvalidMessage) as caught:
            parse_command(raw, REPO)
        assert reason in caught.value.reason and caught.value.command_id == "c1"


def test_keys_and_uris_that_are_plain_names_are_kept_as_given():
    items = [{"key": "chat/2024/a b..c.png"}, {"s3Uri": "s3://my.bucket-1/x/%20y.png"}]
    assert parse_command(shapes(attachments=items)[0], REPO).attachments == tuple(items)


def test_the_variables_have_their_defaults():
    config = load_attachments_config({})
    assert config == AttachmentsConfig(None, (), 5, 10 * 1024 * 1024, False)
    assert config.default_bucket_for("acme") is None and config.allowed_buckets_for("acme") == frozenset()


def test_buckets_name_their_client_and_the_default_bucket_is_always_allowed():
    config = load_attachments_config(
        {
            "ATTACHMENTS_BUCKET": "uploads.{clientId}.example.com",
            "ATTACHMENTS_BUCKETS": " shared-chat-uploads , ,legacy-{clientId}",
            "ATTACHMENTS_MAX_FILES": "20",
            "ATTACHMENTS_MAX_MB": "2.5",
            "ATTACHMENTS_ALLOW_SVG": "yes",
        }
    )
    assert config.default_bucket_for("acme") == "uploads.acme.example.com"
    assert config.allowed_buckets_for("acme") == {"uploads.acme.example.com", "shared-chat-uploads", "legacy-acme"}
    assert (config.max_files, config.max_bytes, config.allow_svg) == (20, int(2.5 * 1024 * 1024), True)


@pytest.mark.parametrize(
    ("variables", "reason"),
    [
        ({"ATTACHMENTS_BUCKET": "Not_A_Bucket"}, "ATTACHMENTS_BUCKET: 'Not_A_Bucket' is not an S3 bucket name"),
        ({"ATTACHMENTS_BUCKET": "s3://bucket/x"}, "ATTACHMENTS_BUCKET"),
        ({"ATTACHMENTS_BUCKETS": "good-one,bad..name"}, "ATTACHMENTS_BUCKETS: 'bad..name'"),
        ({"ATTACHMENTS_MAX_FILES": "21"}, "ATTACHMENTS_MAX_FILES must be at most 20"),
        ({"ATTACHMENTS_MAX_FILES": "-1"}, "ATTACHMENTS_MAX_FILES must be at least 0"),
        ({"ATTACHMENTS_MAX_FILES": "two"}, "ATTACHMENTS_MAX_FILES must be a whole number"),
        ({"ATTACHMENTS_MAX_MB": "0"}, "ATTACHMENTS_MAX_MB must be above 0 and at most 100"),
        ({"ATTACHMENTS_MAX_MB": "101"}, "ATTACHMENTS_MAX_MB must be above 0 and at most 100"),
        ({"ATTACHMENTS_MAX_MB": "nan"}, "ATTACHMENTS_MAX_MB"),
        ({"ATTACHMENTS_ALLOW_SVG": "maybe"}, "ATTACHMENTS_ALLOW_SVG must be true or false"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(variables, reason):
    with pytest.raises(ConfigError) as caught:
        load_attachments_config(variables)
    assert reason in str(caught.value)
