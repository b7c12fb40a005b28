"""deploy/webordinary-edit.yaml: cfn-lint clean, and its task definition is one ECS accepts and our
configuration parser accepts, with the stop timeout, volume and permissions the service needs, in both
queue types (standard, fifo) and with or without Step Functions state machines."""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
import subprocess
import sys
import uuid
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
STATE_MACHINES = (
    "arn:aws:states:us-west-2:123456789012:stateMachine:edit-orchestrator,"
    "arn:aws:states:us-west-2:123456789012:stateMachine:edit-orchestrator-v2"
)
CALLBACKS = {"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"}
QUEUE_TYPES = ["standard", "fifo"]
# CloudFormation spells a few keys differently from the ECS API.
API_KEYS = {"FilesystemId": "fileSystemId", "IAM": "iam", "EFSVolumeConfiguration": "efsVolumeConfiguration"}


def load(template: Path = TEMPLATE) -> dict[str, Any]:
    decoded, errors = decode_str(template.read_text())
    assert not errors, errors
    return decoded


class Resolver:
    """Just enough of CloudFormation's intrinsic functions to render the template with given parameters."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str], stack_name: str = "edit"):
        self.template = template
        self.values = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
        self.values.update(parameters, **{"AWS::Region": REGION, "AWS::AccountId": "123456789012"})
        self.values["AWS::StackName"] = stack_name
        self.conditions = {name: self.resolve(spec) for name, spec in template.get("Conditions", {}).items()}

    def parameter(self, name: str) -> Any:
        """Ref of a parameter: a CommaDelimitedList is a list (an empty value is [""], as in CloudFormation)."""
        if self.template["Parameters"].get(name, {}).get("Type") == "CommaDelimitedList":
            return self.values[name].split(",")
        return self.values[name]

    def queue_name(self, resource: str) -> str:
        """A queue's QueueName, or for an unnamed one the resource's name standing in for the generated one."""
        name = self.resolve(self.template["Resources"][resource]["Properties"].get("QueueName", resource))
        return resource if name is NO_VALUE else name

    def ref(self, resource: str) -> str:
        """What Ref gives for a resource: a queue's URL, else a stand-in name."""
        spec = self.template["Resources"].get(resource, {})
        if spec.get("Type") == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/123456789012/{self.queue_name(resource)}"
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
                if arg == "AWS::NoValue":
                    return NO_VALUE
                return self.parameter(arg) if arg in self.values else self.ref(arg)
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
            if key == "Fn::Not":
                return not self.resolve(arg[0])
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


@pytest.mark.parametrize(
    ("bedrock", "queue_type", "state_machines"),
    list(itertools.product(["false", "true"], QUEUE_TYPES, ["", STATE_MACHINES])),
)
def test_the_task_definition_is_accepted_by_ecs_and_by_our_configuration(aws_env, bedrock, queue_type, state_machines):
    definition = task_definition(
        {
            "UseBedrock": bedrock,
            "QueueType": queue_type,
            "StateMachineArns": state_machines,
            "ImageUri": "example/webordinary-edit:1",
            "RepoUrlTemplate": "https://github.com/example/{clientId}-site.git",
            "SecretArn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:edit",
        }
    )
    ecs = boto3.client("ecs", region_name=REGION, endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    registered = ecs.register_task_definition(**definition)["taskDefinition"]  # botocore validates every field
    container = registered["containerDefinitions"][0]
    env = {item["name"]: item["value"] for item in container["environment"]}
    config = load_config(env)  # every value is one the supervisor accepts (and unknown ones are ignored)
    assert container["stopTimeout"] >= config.shutdown_grace_seconds + 5
    assert container["mountPoints"] == [{"sourceVolume": "workspace", "containerPath": "/workspace"}]
    assert config.workspace_path == "/workspace" and config.idle_exit_seconds
    secrets = {item["name"] for item in container["secrets"]}
    assert ("ANTHROPIC_API_KEY" in secrets) == (bedrock == "false") and "GITHUB_TOKEN" in secrets
    assert (config.agent.backend == "bedrock") == (bedrock == "true")
    assert registered["volumes"][0]["efsVolumeConfiguration"]["transitEncryption"] == "ENABLED"
    # The queues in each mode: FIFO names for the input, output and dead-letter queues, never for interrupts.
    fifo = queue_type == "fifo"
    for name in ("INPUT_QUEUE_URL", "OUTPUT_QUEUE_URL", "DLQ_URL"):
        assert env[name].endswith(".fifo") == fifo, name
    assert config.input_queue_url == env["INPUT_QUEUE_URL"]
    assert env["INPUT_QUEUE_URL"].rsplit("/", 1)[1] == ("edit-input.fifo" if fifo else "edit-input")
    assert env["INTERRUPT_QUEUE_URL"].startswith(f"https://sqs.{REGION}.amazonaws.com/123456789012/")
    assert not env["INTERRUPT_QUEUE_URL"].endswith(".fifo")
    assert len({env["INPUT_QUEUE_URL"], env["OUTPUT_QUEUE_URL"], env["DLQ_URL"], env["INTERRUPT_QUEUE_URL"]}) == 4
    assert env["TASK_HEARTBEAT_SECONDS"] == "30"


def task_statements(parameters: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    template = load()
    rendered = Resolver(template, parameters).resolve(template["Resources"])
    return rendered, rendered["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


@pytest.mark.parametrize(("queue_type", "state_machines"), list(itertools.product(QUEUE_TYPES, ["", STATE_MACHINES])))
def test_roles_grant_exactly_what_the_service_uses(queue_type, state_machines):
    template = load()
    rendered, statements = task_statements(
        {"UseBedrock": "true", "QueueType": queue_type, "StateMachineArns": state_machines}
    )
    actions = {
        action for s in statements for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
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
        "dynamodb:Scan",
    } | (CALLBACKS if state_machines else set())
    by_sid = {s["Sid"]: s for s in statements}
    # Only the Step Functions callbacks name "*": the Service Authorization Reference lists no resource type
    # for states:SendTaskSuccess/SendTaskFailure/SendTaskHeartbeat, so a policy must name "*" for them
    # (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html; cfn-lint's
    # copy of it agrees, see test_the_callbacks_cannot_be_scoped_to_a_state_machine). Every other statement
    # names its resources.
    assert [s["Sid"] for s in statements if s["Resource"] == "*"] == (
        ["AnswerStepFunctionsTaskTokens"] if state_machines else []
    )
    if state_machines:
        callbacks = by_sid["AnswerStepFunctionsTaskTokens"]
        assert set(callbacks["Action"]) == CALLBACKS and callbacks["Effect"] == "Allow"
        assert callbacks["Condition"] == {"StringEquals": {"aws:RequestedRegion": REGION}}
    else:
        assert "AnswerStepFunctionsTaskTokens" not in by_sid and not any(a.startswith("states:") for a in actions)
    assert by_sid["HoldWorkspaceLeases"]["Resource"].endswith(":LeaseTable/Arn")  # the table, no other
    assert by_sid["ConsumeTheInterruptQueue"]["Resource"].endswith(":InterruptQueue/Arn")
    assert by_sid["ConsumeTheInterruptQueue"]["Action"] == by_sid["ConsumeTheInputQueue"]["Action"]
    # The task only consumes interrupts (one for a workspace another task owns goes to that task's inbox, or
    # back to visible): no SendMessage on the interrupt queue.
    assert not any("InterruptQueue" in str(s["Resource"]) for s in statements if "sqs:SendMessage" in s["Action"])
    # The inboxes a task makes are exactly the queues the pattern grants, and nothing wider: standard and
    # FIFO inboxes alike (a FIFO input's inboxes are FIFO queues, `….fifo`).
    pattern = by_sid["OwnAndAdoptInboxes"]["Resource"]
    input_url = Resolver(template, {"QueueType": queue_type}).ref("InputQueue")
    inboxes = [
        inbox_name(input_url, "ip-10-0-1-23.ec2.internal-7-ab12cd"),
        "edit-input-inbox-0123456789ab",
        "edit-input-inbox-0123456789ab.fifo",
    ]
    for inbox in inboxes:
        assert fnmatch.fnmatchcase(f"arn:aws:sqs:{REGION}:123456789012:{inbox}", pattern), inbox
    assert pattern.count("*") == 1
    for other in ("edit-input", "edit-input.fifo", "edit-output.fifo", "edit-dead-letters.fifo", "edit-inbox-x"):
        assert not fnmatch.fnmatchcase(f"arn:aws:sqs:{REGION}:123456789012:{other}", pattern), other
    buckets = [s["Resource"] for s in statements if s["Action"] == "s3:ListBucket"]
    assert buckets == ["arn:aws:s3:::edit.*.webordinary.com"]
    assume = rendered["TaskRoleAssumesAgentRole"]["Properties"]["PolicyDocument"]["Statement"]
    assert assume == [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": assume[0]["Resource"]}]
    assert "AgentBedrockRole" in assume[0]["Resource"]
    agent = rendered["AgentBedrockRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert [s["Action"] for s in agent] == [["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]]


def test_the_callbacks_cannot_be_scoped_to_a_state_machine():
    """Why AnswerStepFunctionsTaskTokens names "*": in the Service Authorization Reference (cfn-lint ships a
    copy) StartExecution takes a state machine, the SendTask* actions take no resource type at all. If AWS
    ever gives them one, this fails: then scope the statement to !Ref StateMachineArns instead."""
    import cfnlint.data.AdditionalSpecs as specs

    policies = json.loads((Path(specs.__file__).parent / "Policies.json").read_text())["states"]["Actions"]
    assert policies["startexecution"]["Resources"] == ["statemachine"]
    for action in CALLBACKS:
        assert not policies[action.split(":")[1].lower()].get("Resources"), action


def rendered_queues(parameters: dict[str, str], stack_name: str = "edit") -> dict[str, dict[str, Any]]:
    template = load()
    resolver = Resolver(template, parameters, stack_name)
    return {
        name: {**resolver.resolve(spec["Properties"]), "QueueName": resolver.queue_name(name)}
        for name, spec in template["Resources"].items()
        if spec["Type"] == "AWS::SQS::Queue"
    }


@pytest.mark.parametrize("queue_type", QUEUE_TYPES)
def test_the_queues_of_each_queue_type(queue_type):
    queues = rendered_queues({"QueueType": queue_type})
    assert set(queues) == {"InputQueue", "OutputQueue", "DeadLetterQueue", "InterruptQueue"}
    fifo = queue_type == "fifo"
    for name in ("InputQueue", "OutputQueue", "DeadLetterQueue"):
        queue = queues[name]
        if fifo:
            # The supervisor sends its own MessageDeduplicationId: no content-based deduplication.
            assert queue["FifoQueue"] is True and queue["ContentBasedDeduplication"] is False, name
            assert queue["QueueName"].endswith(".fifo"), name
        else:
            # FifoQueue left out (SQS refuses it on a standard queue); names as before (no replacement).
            assert "FifoQueue" not in queue and "ContentBasedDeduplication" not in queue, name
    assert queues["InputQueue"]["QueueName"] == ("edit-input.fifo" if fifo else "edit-input")
    if not fifo:  # generated names, as before this option: an update does not replace them
        assert queues["OutputQueue"]["QueueName"] == "OutputQueue"
        assert queues["DeadLetterQueue"]["QueueName"] == "DeadLetterQueue"
    assert queues["InputQueue"]["RedrivePolicy"]["deadLetterTargetArn"].endswith(":DeadLetterQueue/Arn")
    # The interrupt queue: standard in both modes, short-lived, never dead-lettered (a replayed interrupt
    # would stop a newer command; a standard queue cannot use a FIFO dead-letter queue anyway).
    interrupt = queues["InterruptQueue"]
    assert "FifoQueue" not in interrupt and not interrupt["QueueName"].endswith(".fifo")
    assert 60 <= interrupt["MessageRetentionPeriod"] <= 900
    assert "RedrivePolicy" not in interrupt


@pytest.mark.parametrize("queue_type", QUEUE_TYPES)
def test_sqs_accepts_the_queues_of_each_queue_type(aws_env, sqs, queue_type):
    """Each queue created with its rendered properties, the dead-letter queue first (moto checks FIFO names,
    and that a FIFO queue's redrive target is a FIFO queue)."""
    stack = f"t{uuid.uuid4().hex[:8]}"
    queues = rendered_queues({"QueueType": queue_type}, stack)
    arns = {}
    for name in ("DeadLetterQueue", "InputQueue", "OutputQueue", "InterruptQueue"):
        spec = dict(queues[name])
        queue_name = spec.pop("QueueName")
        if queue_name == name:  # a generated name stands in as the resource's own: make it unique
            queue_name = f"{stack}-{name}" + (".fifo" if spec.get("FifoQueue") else "")
        attributes = {}
        for key, value in spec.items():
            if key == "RedrivePolicy":
                value = json.dumps({**value, "deadLetterTargetArn": arns["DeadLetterQueue"]})
            attributes[key] = str(value).lower() if isinstance(value, bool) else str(value)
        url = sqs.create_queue(QueueName=queue_name, Attributes=attributes)["QueueUrl"]
        got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        arns[name] = got["QueueArn"]
        assert (got.get("FifoQueue") == "true") == (queue_type == "fifo" and name != "InterruptQueue"), name
    if queue_type == "fifo":
        # What the supervisor does in fifo mode: a group and its own deduplication id on every send.
        url = sqs.get_queue_url(QueueName=f"{stack}-input.fifo")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="{}", MessageGroupId="acme/me", MessageDeduplicationId="c1")


def test_the_service_scales_to_zero_and_the_queue_dead_letters():
    resources = load()["Resources"]
    assert resources["ScalableTarget"]["Properties"]["MinCapacity"] == 0
    assert resources["InputQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] >= 2
    assert resources["Service"]["Properties"]["DesiredCount"] == 0


def test_the_outputs_name_every_queue():
    outputs = load()["Outputs"]
    for output, queue in [
        ("InputQueueUrl", "InputQueue"),
        ("OutputQueueUrl", "OutputQueue"),
        ("DeadLetterQueueUrl", "DeadLetterQueue"),
        ("InterruptQueueUrl", "InterruptQueue"),
    ]:
        assert outputs[output]["Value"] == {"Ref": queue}


def test_the_image_ships_the_claude_code_version_the_tests_run():
    pinned = re.search(r'claude-code-version = "([^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    in_image = re.search(r"ARG CLAUDE_CODE_VERSION=(\S+)", (ROOT / "Dockerfile").read_text()).group(1)
    assert in_image == pinned
