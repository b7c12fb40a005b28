"""deploy/webordinary-edit.yaml: cfn-lint clean, and its task definition is one ECS accepts and our
configuration parser accepts, with the stop timeout, volume and permissions the service needs."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import decode_str
from helpers import REGION, ROOT

from supervisor.contract.config import load_config
from supervisor.sharing.inboxes import inbox_name

TEMPLATE = ROOT / "deploy" / "webordinary-edit.yaml"
NO_VALUE = object()
# CloudFormation spells a few keys differently from the ECS API.
API_KEYS = {"FilesystemId": "fileSystemId", "IAM": "iam", "EFSVolumeConfiguration": "efsVolumeConfiguration"}


def load(template: Path = TEMPLATE) -> dict[str, Any]:
    decoded, errors = decode_str(template.read_text())
    assert not errors, errors
    return decoded


class Resolver:
    """Just enough of CloudFormation's intrinsic functions to render the template with given parameters."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str]):
        self.template = template
        self.values = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
        self.values.update(parameters, **{"AWS::Region": REGION, "AWS::AccountId": "123456789012"})
        self.values["AWS::StackName"] = "edit"
        self.conditions = {name: self.resolve(spec) for name, spec in template.get("Conditions", {}).items()}

    def ref(self, resource: str) -> str:
        """What Ref gives for a resource: a queue's URL, else a stand-in name."""
        spec = self.template["Resources"].get(resource, {})
        if spec.get("Type") == "AWS::SQS::Queue":
            name = self.resolve(spec["Properties"].get("QueueName", resource))
            return f"https://sqs.{REGION}.amazonaws.com/123456789012/{name}"
        return f"ref-{resource}"

    def name(self, name: str) -> Any:
        """A ${Name} in Fn::Sub that is not a parameter: a resource's Ref, or with a dot its GetAtt."""
        return self.resolve({"Fn::GetAtt": name} if "." in name else {"Ref": name})

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [value for value in (self.resolve(item) for item in node) if value is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return NO_VALUE if arg == "AWS::NoValue" else self.values.get(arg, self.ref(arg))
            if key == "Fn::GetAtt":
                resource, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                kind = self.template["Resources"][resource]["Type"]
                if kind == "AWS::IAM::Role" and attribute == "Arn":
                    return f"arn:aws:iam::123456789012:role/edit-{resource}-TEST"
                return f"arn:aws:test:{REGION}:123456789012:{resource}/{attribute}"
            if key == "Fn::Sub":
                text, names = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
                lookup = {**self.values, **names}
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(lookup.get(m.group(1), self.name(m.group(1)))), text)
            if key == "Fn::If":
                return self.resolve(arg[1] if self.conditions[arg[0]] else arg[2])
            if key == "Fn::Equals":
                return self.resolve(arg[0]) == self.resolve(arg[1])
            if key == "Fn::Join":
                return arg[0].join(self.resolve(arg[1]))
            if key == "Fn::Split":
                return self.resolve(arg[1]).split(arg[0])
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not NO_VALUE}


def api_case(node: Any) -> Any:
    """CloudFormation's PascalCase properties → the ECS API's camelCase (log driver options kept as is)."""
    if isinstance(node, list):
        return [api_case(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        API_KEYS.get(key, key[:1].lower() + key[1:]): value if key == "Options" else api_case(value)
        for key, value in node.items()
    }


def task_definition(parameters: dict[str, str]) -> dict[str, Any]:
    template = load()
    properties = template["Resources"]["TaskDefinition"]["Properties"]
    return api_case(Resolver(template, parameters).resolve(properties))


def test_cfn_lint_passes():
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    completed = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize("bedrock", ["false", "true"])
def test_the_task_definition_is_accepted_by_ecs_and_by_our_configuration(aws_env, bedrock):
    definition = task_definition(
        {
            "UseBedrock": bedrock,
            "ImageUri": "example/webordinary-edit:1",
            "RepoUrlTemplate": "https://github.com/example/{clientId}-site.git",
            "SecretArn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:edit",
        }
    )
    ecs = boto3.client("ecs", region_name=REGION, endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    registered = ecs.register_task_definition(**definition)["taskDefinition"]  # botocore validates every field
    container = registered["containerDefinitions"][0]
    env = {item["name"]: item["value"] for item in container["environment"]}
    config = load_config(env)  # every value is one the supervisor accepts
    assert container["stopTimeout"] >= config.shutdown_grace_seconds + 5
    assert container["mountPoints"] == [{"sourceVolume": "workspace", "containerPath": "/workspace"}]
    assert config.workspace_path == "/workspace" and config.idle_exit_seconds
    secrets = {item["name"] for item in container["secrets"]}
    assert ("ANTHROPIC_API_KEY" in secrets) == (bedrock == "false") and "GITHUB_TOKEN" in secrets
    assert (config.agent.backend == "bedrock") == (bedrock == "true")
    assert registered["volumes"][0]["efsVolumeConfiguration"]["transitEncryption"] == "ENABLED"


def test_roles_grant_exactly_what_the_service_uses():
    template = load()
    rendered = Resolver(template, {"UseBedrock": "true"}).resolve(template["Resources"])
    task_statements = rendered["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    actions = {
        action for s in task_statements for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert actions == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "sqs:CreateQueue",
        "sqs:TagQueue",
        "sqs:DeleteQueue",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",  # a released lease's item (supervisor/sharing/lease_table.py)
        "dynamodb:Scan",
    }
    assert not any(s["Resource"] == "*" for s in task_statements)
    by_sid = {s["Sid"]: s for s in task_statements}
    assert by_sid["HoldWorkspaceLeases"]["Resource"].endswith(":LeaseTable/Arn")  # the table, no other
    # The inboxes a task makes are exactly the queues the pattern grants, and nothing wider.
    pattern = by_sid["OwnAndAdoptInboxes"]["Resource"]
    input_url = Resolver(template, {}).ref("InputQueue")
    inbox = f"arn:aws:sqs:{REGION}:123456789012:{inbox_name(input_url, 'ip-10-0-1-23.ec2.internal-7-ab12cd')}"
    assert fnmatch.fnmatchcase(inbox, pattern) and pattern.count("*") == 1
    buckets = [s["Resource"] for s in task_statements if s["Action"] == "s3:ListBucket"]
    assert buckets == ["arn:aws:s3:::edit.*.webordinary.com"]
    assume = rendered["TaskRoleAssumesAgentRole"]["Properties"]["PolicyDocument"]["Statement"]
    assert assume == [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": assume[0]["Resource"]}]
    assert "AgentBedrockRole" in assume[0]["Resource"]
    agent = rendered["AgentBedrockRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert [s["Action"] for s in agent] == [["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]]


def test_the_service_scales_to_zero_and_the_queue_dead_letters():
    resources = load()["Resources"]
    assert resources["ScalableTarget"]["Properties"]["MinCapacity"] == 0
    assert resources["InputQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] >= 2
    assert resources["Service"]["Properties"]["DesiredCount"] == 0


def test_the_image_ships_the_claude_code_version_the_tests_run():
    pinned = re.search(r'claude-code-version = "([^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    in_image = re.search(r"ARG CLAUDE_CODE_VERSION=(\S+)", (ROOT / "Dockerfile").read_text()).group(1)
    assert in_image == pinned
