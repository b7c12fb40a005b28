"""Message bodies that try hard to break the supervisor: a hostile corpus plus hypothesis-made JSON.

Shared by the fuzz bench (bench/fuzz.py, ten thousand and more) and its short variant in the suite
(tests/e2e/test_fuzz.py). Each body is classified by the contract's own parser, so the run can check
that every invalid one was dead-lettered and every valid one answered exactly once.
"""

from __future__ import annotations

import json
import random
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.errors import NonInteractiveExampleWarning

from supervisor.contract.command import InvalidMessage, parse_command

FIELDS = (
    "instruction",
    "commandId",
    "chatThreadId",
    "threadId",
    "clientId",
    "projectId",
    "userId",
    "sessionId",
    "repoUrl",
    "type",
    "timestamp",
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
SHELL = [
    "$(touch {canary})",
    "`touch {canary}`",
    "; touch {canary}",
    "| touch {canary}",
    "&& touch {canary} #",
    "\n touch {canary}",
    "'; touch {canary}; '",
    '"; touch {canary}; "',
]
IDS = [
    "../../etc",
    "..",
    ".",
    "-rf",
    "--help",
    "a/b",
    "a\\b",
    "thread-",
    "HEAD",
    "refs/heads/x",
    "x.lock",
    "a..b",
    "@{1}",
    "ａcme",
    "аcme",
    "acme\u200b",
    "acme\n",
    " acme",
    "a" * 129,
    "\ud800",
    "ok\x00id",
    "😀",
]


@dataclass(frozen=True)
class Body:
    text: str
    valid: bool
    command_id: str | None


def classify(text: str, repo_url: str) -> Body:
    try:
        command = parse_command(text, repo_url)
    except InvalidMessage:
        return Body(text, False, None)
    return Body(text, True, command.command_id)


def _valid(rng: random.Random, canary: Path, n: int) -> dict[str, object]:
    """A valid command with a hostile instruction and thread: real workers run it."""
    shell = rng.choice(SHELL).format(canary=canary)
    return {
        "instruction": rng.choice(["--help ", "-rf / ", "", "Überschrift 🎉 "])
        + f"make it so {shell}\n@fake no-change",
        "commandId": f"fuzz-valid-{n}-{uuid.uuid4().hex[:6]}",
        "chatThreadId": rng.choice(["chat-1", "../../x", "thread-thread-", "a b c", "ｔhread", "--force"]),
        "clientId": "acme",
        "userId": "u1",
    }


def _template(n: int) -> dict[str, object]:
    return {"instruction": "x", "commandId": f"fuzz-{n}", "chatThreadId": "t", "clientId": "acme", "userId": "u1"}


def hostile_corpus(rng: random.Random, canary: Path, n: int) -> str:
    """One body from the hand-made corpus, chosen at random."""
    base = _template(n)
    kind = rng.randrange(12)
    if kind == 0:
        return rng.choice(["", "not json", "{", "[]", "null", "42", '"text"', "true", "{]", "\ufeff{}", "\x00"])
    if kind == 1:  # every JSON type in every field
        base[rng.choice(FIELDS)] = rng.choice([None, True, 0, -1.5, [], {}, "", [1], {"a": 1}])
    elif kind == 2:  # ids the rules must refuse (or turn into safe branch names)
        base[rng.choice(["clientId", "userId", "projectId", "chatThreadId", "commandId", "sessionId"])] = rng.choice(
            IDS
        )
    elif kind == 3:  # control characters and NUL
        base[rng.choice(["instruction", "commandId", "chatThreadId"])] = f"a{chr(rng.randrange(0, 32))}b"
    elif kind == 4:  # lone surrogates
        base[rng.choice(["instruction", "commandId", "chatThreadId", "sessionId"])] = "x\ud800y"
    elif kind == 5:  # near SQS's size limit
        base["instruction"] = "y" * rng.choice([65_535, 65_537, 200_000])
    elif kind == 6:  # deep nesting
        depth = rng.choice([100, 1_000, 5_000])
        return '{"instruction": ' + "[" * depth + "]" * depth + "}"
    elif kind == 7:  # option and protocol injection through the remote
        base["repoUrl"] = rng.choice(
            [
                "ext::sh -c touch% /tmp/x",
                "--upload-pack=touch /tmp/x",
                "file:///etc/",
                "-oProxyCommand=x",
                "https://x/../..",
                "/srv/../etc/passwd",
            ]
        )
    elif kind == 8:
        base["type"] = rng.choice(["work ", "WORK", "other", 1])
    elif kind == 9:
        base["timestamp"] = rng.choice(["yesterday", True, [], "2026-13-45T00:00:00Z", 1.5e300])
    elif kind == 10:  # duplicated keys, last one wins in JSON
        return '{"commandId": "a", "commandId": "' + f"fuzz-dup-{n}" + '", "instruction": 1}'
    else:
        base["instruction"] = f"harmless {rng.choice(SHELL).format(canary=canary)}"
        base["clientId"] = rng.choice(IDS)
    return json.dumps(base, ensure_ascii=rng.random() < 0.5)


def random_json(n: int) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        value = JSON_VALUES.example()
    if isinstance(value, dict) and value and n % 2:
        value = {**_template(n), **value}  # valid-looking fields mixed with random ones
    return json.dumps(value)


def bodies(count: int, *, seed: int, canary: Path, repo_url: str, valid_share: float = 0.01) -> Iterator[Body]:
    """`count` bodies: about valid_share valid-but-hostile commands, the rest from the corpus and hypothesis."""
    rng = random.Random(seed)
    for n in range(count):
        roll = rng.random()
        if roll < valid_share:
            text = json.dumps(_valid(rng, canary, n), ensure_ascii=False)
        elif roll < 0.6:
            text = hostile_corpus(rng, canary, n)
        else:
            text = random_json(n)
        yield classify(text, repo_url)
