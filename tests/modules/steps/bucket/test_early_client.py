"""The hash deploy's S3 client, made on a thread as the command starts (steps/deploy.py prepare)."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest

from steps.bucket import deploy_hash
from supervisor.contract.config import load_config


def test_the_client_made_early_is_the_one_the_deploy_takes(monkeypatch):
    config = load_config({"LOG_FORMAT": "text"}, require_input_queue=False)
    made: list[tuple[object, str]] = []

    def make(cfg):
        made.append((cfg, threading.current_thread().name))
        return object()

    monkeypatch.setattr(deploy_hash, "make_client", make)
    deploy_hash.make_client_early(config)
    deploy_hash.make_client_early(config)  # once per config
    client = deploy_hash.client_for(config)
    assert made == [(config, "s3-client")]
    assert deploy_hash.client_for(config) is not client  # taken once; the next is made on the spot
    assert len(made) == 2 and made[1][1] == threading.current_thread().name


def test_a_failure_to_make_it_early_is_raised_where_it_is_taken(monkeypatch):
    config = load_config({"LOG_FORMAT": "text"}, require_input_queue=False)

    def broken(cfg):
        raise ValueError("no region")

    monkeypatch.setattr(deploy_hash, "make_client", broken)
    deploy_hash.make_client_early(config)
    with pytest.raises(ValueError, match="no region"):
        deploy_hash.client_for(config)


def test_the_deploy_client_keeps_timestamps_as_text_and_bin_previews_gets_them_parsed(config, s3, bucket):
    """The deploy reads no timestamp, so its client skips parsing them (a quarter of a large listing);
    bin/previews compares LastModified, so its client parses them and gets whole listings."""
    s3.put_object(Bucket=bucket, Key="index.html", Body=b"<p>hi</p>")
    deploy_client = deploy_hash.make_client(config)
    previews_client = deploy_hash.make_client(config, full_responses=True)
    assert isinstance(deploy_client.head_object(Bucket=bucket, Key="index.html")["LastModified"], str)
    parsed = previews_client.list_objects_v2(Bucket=bucket)["Contents"][0]["LastModified"]
    assert isinstance(parsed, datetime) and parsed.tzinfo is not None
