"""Thread previews in deploy/webordinary-edit.yaml: the CloudFront function (deploy/thread-preview-function.js)
run by node on sample viewer-request events, the same code inlined in the template, and the distribution
there only when its domain and certificate are given (cfn-lint: tests/deploy/test_template.py)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from helpers import ROOT
from test_template import NO_VALUE, Resolver, load

from supervisor.contract.config import load_config
from supervisor.contract.previews import thread_label, thread_prefix

FUNCTION = ROOT / "deploy" / "thread-preview-function.js"
DOMAIN = "edit.acme.webordinary.com"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
THREAD_RESOURCES = {"ThreadPreviewFunction", "ThreadPreviewOriginAccess", "ThreadPreviewDistribution"}
# Loads the function as CloudFront does (a script defining `handler`), runs it on each event of stdin.
RUNNER = """
const fs = require('fs'), vm = require('vm');
const context = vm.createContext({});
vm.runInContext(fs.readFileSync(process.argv[1], 'utf8'), context);
const events = JSON.parse(fs.readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify(events.map((event) => context.handler(event))));
"""


def viewer_request(host: str | None, uri: str, querystring: dict[str, Any] | None = None) -> dict[str, Any]:
    """A viewer-request event as CloudFront Functions (cloudfront-js-2.0) hands it over."""
    headers = {"host": {"value": host}} if host is not None else {}
    return {
        "version": "1.0",
        "context": {"eventType": "viewer-request", "distributionDomainName": "d111111abcdef8.cloudfront.net"},
        "viewer": {"ip": "198.51.100.7"},
        "request": {"method": "GET", "uri": uri, "querystring": querystring or {}, "headers": headers, "cookies": {}},
    }


def run_function(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["node", "-e", RUNNER, str(FUNCTION)], input=json.dumps(events), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_function_serves_each_thread_from_its_folder_like_a_static_host():
    hosts = [f"chat-a.{DOMAIN}", f"CHAT-A.{DOMAIN.upper()}", f"{thread_label('Chat_B: Menü')}.{DOMAIN}"]
    cases = [
        (hosts[0], "/", "/threads/chat-a/index.html"),
        (hosts[0], "/about/", "/threads/chat-a/about/index.html"),
        (hosts[0], "/about", "/threads/chat-a/about/index.html"),
        (hosts[0], "/blog/post.one/", "/threads/chat-a/blog/post.one/index.html"),
        (hosts[0], "/_astro/site.1a2b3c4d.css", "/threads/chat-a/_astro/site.1a2b3c4d.css"),
        (hosts[0], "/caf%C3%A9/", "/threads/chat-a/caf%C3%A9/index.html"),  # left encoded, as S3 reads it
        (hosts[1], "/favicon.ico", "/threads/chat-a/favicon.ico"),  # DNS names are case-insensitive
        (hosts[2], "/", f"/{thread_prefix('Chat_B: Menü')}index.html"),  # the worker's label, the worker's folder
    ]
    query = {"v": {"value": "2"}}
    results = run_function([viewer_request(host, uri, query) for host, uri, _ in cases])
    for (host, uri, expected), result in zip(cases, results, strict=True):
        assert result["uri"] == expected, (host, uri)
        assert result["querystring"] == query and result["headers"]["host"]["value"] == host  # nothing else changed
    assert thread_label("Chat_B: Menü") != "chat_b: menü"  # it had to be made: a slug and a hash


@pytest.mark.parametrize(
    ("host", "uri", "status"),
    [
        (f"chat_a.{DOMAIN}", "/", 404),  # "_" is no DNS label character, so no thread's
        (f"a--b.{DOMAIN}", "/", 404),  # never made by thread_label (IDNA reserves "--")
        (f"-a.{DOMAIN}", "/", 404),
        (f"{'a' * 64}.{DOMAIN}", "/", 404),  # longer than a label
        (f".{DOMAIN}", "/", 404),
        (None, "/", 404),
        (f"chat-a.{DOMAIN}", "/../other/index.html", 400),  # out of the thread's folder
        (f"chat-a.{DOMAIN}", "/%2e%2e/other/index.html", 400),
        (f"chat-a.{DOMAIN}", "/%E0%A4%A/", 400),  # not a valid encoding
    ],
)
def test_the_function_refuses_what_is_no_thread_preview(host, uri, status):
    (result,) = run_function([viewer_request(host, uri)])
    assert result["statusCode"] == status and "uri" not in result


def function_code_in_template() -> str:
    return load()["Resources"]["ThreadPreviewFunction"]["Properties"]["FunctionCode"]


def test_the_template_inlines_the_function_file_as_is():
    assert function_code_in_template() == FUNCTION.read_text(), (
        "deploy/webordinary-edit.yaml's FunctionCode differs from deploy/thread-preview-function.js: "
        "copy the file into the block, indented by 8 spaces"
    )


def rendered(parameters: dict[str, str]) -> tuple[Resolver, dict[str, Any]]:
    template = load()
    resolver = Resolver(template, parameters)
    resources = {
        name: spec
        for name, spec in template["Resources"].items()
        if "Condition" not in spec or resolver.conditions[spec["Condition"]]
    }
    return resolver, resolver.resolve(resources)


def test_without_a_domain_the_stack_has_no_distribution_and_shared_previews():
    _, resources = rendered({})
    assert not THREAD_RESOURCES & set(resources)
    env = {
        e["Name"]: e["Value"]
        for e in resources["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Environment"]
    }
    config = load_config(env, require_input_queue=False)
    assert config.preview_mode == "shared"
    assert config.thread_preview_url == "https://{threadId}.edit.{clientId}.webordinary.com"


@pytest.mark.parametrize("bucket", ["", "edit-acme-previews"])
def test_with_a_domain_and_certificate_one_distribution_serves_the_threads_of_the_bucket(bucket):
    parameters = {
        "ThreadPreviewDomain": DOMAIN,
        "ThreadPreviewCertificateArn": CERTIFICATE,
        "ThreadPreviewBucket": bucket,
        "PreviewMode": "thread",
    }
    resolver, resources = rendered(parameters)
    assert set(resources) >= THREAD_RESOURCES
    config = resources["ThreadPreviewDistribution"]["Properties"]["DistributionConfig"]
    assert config["Aliases"] == [f"*.{DOMAIN}"]
    assert config["ViewerCertificate"]["AcmCertificateArn"] == CERTIFICATE
    (origin,) = config["Origins"]
    assert origin["DomainName"] == f"{bucket or DOMAIN}.s3.us-west-2.amazonaws.com"
    assert origin["OriginAccessControlId"].endswith(":ThreadPreviewOriginAccess/Id")
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["AllowedMethods"] == ["GET", "HEAD"] and behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
    (association,) = behaviour["FunctionAssociations"]
    assert association == {
        "EventType": "viewer-request",
        "FunctionARN": "arn:aws:test:us-west-2:123456789012:ThreadPreviewFunction/FunctionARN",
    }
    function = resources["ThreadPreviewFunction"]["Properties"]
    assert function["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0" and function["AutoPublish"] is True
    # The bucket policy statement to add reads threads/* of that bucket, for this distribution only.
    template = load()
    statement = json.loads(resolver.resolve(template["Outputs"]["ThreadPreviewBucketPolicyStatement"]["Value"]))
    assert statement["Resource"].endswith(f":s3:::{bucket or DOMAIN}/threads/*")
    assert statement["Action"] == "s3:GetObject" and statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert statement["Condition"]["StringEquals"]["AWS:SourceArn"].endswith(
        "distribution/ref-ThreadPreviewDistribution"
    )
    env = {
        e["Name"]: e["Value"]
        for e in resources["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]["Environment"]
    }
    assert load_config(env, require_input_queue=False).preview_mode == "thread"


def test_a_domain_without_a_certificate_is_refused_by_the_template_rules():
    """Both or neither: CloudFront needs the certificate for the wildcard name (a Rules assertion)."""
    rule = load()["Rules"]["ThreadPreviewsNeedDomainAndCertificate"]["Assertions"][0]["Assert"]
    for domain, certificate, accepted in [
        ("", "", True),
        (DOMAIN, CERTIFICATE, True),
        (DOMAIN, "", False),
        ("", CERTIFICATE, False),
    ]:
        resolver = Resolver(load(), {"ThreadPreviewDomain": domain, "ThreadPreviewCertificateArn": certificate})
        assert evaluate(resolver, rule) is accepted, (domain, certificate)


def evaluate(resolver: Resolver, node: Any) -> Any:
    """Fn::Or and Fn::And of a Rules assertion (the Resolver knows Fn::Equals and Fn::Not)."""
    if isinstance(node, dict) and len(node) == 1:
        ((key, arg),) = node.items()
        if key == "Fn::Or":
            return any(evaluate(resolver, item) for item in arg)
        if key == "Fn::And":
            return all(evaluate(resolver, item) for item in arg)
        if key == "Fn::Not":
            return not evaluate(resolver, arg[0])
    value = resolver.resolve(node)
    assert value is not NO_VALUE
    return value
