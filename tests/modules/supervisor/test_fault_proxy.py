"""The fault-injecting proxy the faults bench puts in front of moto (supervisor/local/fault_proxy.py)."""

from __future__ import annotations

import os
import subprocess

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from supervisor.local.fault_proxy import FaultPlan, FaultProxy

REGION = "us-west-2"


@pytest.fixture
def proxy(moto_endpoint, aws_env):
    plan = FaultPlan(error_rate=0.15, drop_rate=0.15, slow_rate=0.1, slow_seconds=0.05, seed=7)
    running = FaultProxy(moto_endpoint, plan).start()
    yield running
    running.stop()


def client(service: str, proxy: FaultProxy, attempts: int):
    config = BotoConfig(retries={"mode": "standard", "max_attempts": attempts}, connect_timeout=2, read_timeout=10)
    return boto3.client(service, region_name=REGION, endpoint_url=proxy.url, config=config)


def test_faults_hit_only_the_chosen_services_and_the_sdk_retries_through_them(proxy, bucket_prefix):
    proxy.plan.on.set()
    sqs, s3 = client("sqs", proxy, attempts=10), client("s3", proxy, attempts=10)
    url = sqs.create_queue(QueueName=f"{bucket_prefix}-proxied")["QueueUrl"]
    bucket = f"{bucket_prefix}-proxied"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    for n in range(12):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
        s3.put_object(Bucket=bucket, Key=f"k{n}", Body=b"x" * n)
    assert s3.head_object(Bucket=bucket, Key="k7")["ContentLength"] == 7  # HEAD keeps the object's length
    injected = proxy.injected()
    assert {"sqs:error", "sqs:drop", "s3:error", "s3:drop"} <= set(injected), injected
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "12"  # a drop never reached moto: no doubles

    proxy.plan.on.clear()
    before = sum(proxy.injected().values())
    sqs.send_message(QueueUrl=url, MessageBody="calm")
    assert sum(proxy.injected().values()) == before


def test_a_single_attempt_sees_each_kind_of_fault(proxy, bucket_prefix):
    sqs = client("sqs", proxy, attempts=1)
    url = sqs.create_queue(QueueName=f"{bucket_prefix}-single")["QueueUrl"]
    proxy.plan.on.set()
    seen = set()
    for _ in range(40):
        try:
            sqs.send_message(QueueUrl=url, MessageBody="x")
            seen.add("ok")
        except ClientError as error:
            seen.add(error.response["Error"]["Code"])
        except (ConnectionClosedError, EndpointConnectionError):
            seen.add("dropped")
    assert {"ok", "InternalError", "dropped"} <= seen, seen


def test_the_aws_cli_works_through_the_proxy(proxy, bucket_prefix, tmp_path, aws_env):
    s3 = client("s3", proxy, attempts=5)
    bucket = f"{bucket_prefix}-cli"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    (tmp_path / "site").mkdir()
    for n in range(5):
        (tmp_path / "site" / f"page{n}.html").write_text(f"page {n}")
    env = {**os.environ, **aws_env, "AWS_ENDPOINT_URL": proxy.url, "AWS_MAX_ATTEMPTS": "10"}
    proxy.plan.error_rate, proxy.plan.drop_rate = 0.1, 0.05
    proxy.plan.on.set()
    subprocess.run(["aws", "s3", "sync", str(tmp_path / "site"), f"s3://{bucket}/"], env=env, check=True, timeout=120)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {f"page{n}.html" for n in range(5)}
