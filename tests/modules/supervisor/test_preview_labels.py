"""A thread's label (supervisor/contract/previews.py): a DNS label and a folder name for any thread id,
the same in the deploy prefix and the URL; PREVIEW_MODE and THREAD_PREVIEW_URL checked at start."""

from __future__ import annotations

import json
import re

import pytest
from helpers import message

from supervisor.contract.command import parse_command
from supervisor.contract.config import ConfigError, load_config
from supervisor.contract.previews import is_thread_label, thread_label, thread_prefix, thread_preview_url

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
REPO = "https://git.example.invalid/site.git"


@pytest.mark.parametrize("thread_id", ["chat-1", "local-demo", "3f2b8c1e-9a4d-4b6e-8f1a-2c3d4e5f6a7b", "a", "x" * 63])
def test_an_id_that_is_already_a_label_is_its_own_label(thread_id):
    assert thread_label(thread_id) == thread_id
    assert thread_prefix(thread_id) == f"threads/{thread_id}/"


@pytest.mark.parametrize(
    ("thread_id", "slug"),
    [
        ("Chat-A", "chat-a"),  # upper case
        ("chat_a", "chat-a"),  # "_"
        ("a--b", "a-b"),  # IDNA reserves "--"
        ("-chat-", "chat"),
        ("chat.one/two", "chat-one-two"),  # it must stay one label and one folder
        ("Menü über alles", "men-ber-alles"),
        ("x" * 64, "x" * 54),  # too long for a label
        ("y" * 128, "y" * 54),
        ("日本語", ""),  # nothing of it is left: the hash alone
        ("..", ""),
        ("chat-0123abcd", "chat-0123abcd"),  # ends like a made label: made, so no kept id can equal a made one
        ("deadbeef", "deadbeef"),
    ],
)
def test_any_other_id_gets_a_slug_and_a_hash(thread_id, slug):
    label = thread_label(thread_id)
    assert DNS_LABEL.fullmatch(label) and is_thread_label(label) and len(label) <= 63
    assert re.fullmatch(rf"{re.escape(slug)}-[0-9a-f]{{8}}" if slug else r"[0-9a-f]{8}", label), label
    assert thread_label(thread_id) == label  # stable across calls (and processes: a hash, not a counter)
    assert thread_prefix(thread_id) == f"threads/{label}/"


def test_different_ids_that_slug_alike_get_different_labels():
    ids = ["Chat-A", "chat_a", "CHAT-A", "chat.a", "chat-a-", "chat a"]
    labels = {thread_label(i) for i in ids}
    assert len(labels) == len(ids) and "chat-a" not in labels
    assert thread_label("chat-a") == "chat-a"


@pytest.mark.parametrize("value", ["", "A", "a_b", "a--b", "-a", "a-", "a" * 64, "a.b", "a/b"])
def test_what_is_no_thread_label(value):
    assert not is_thread_label(value)


def test_thread_mode_gives_each_thread_its_url_and_folder():
    env = {"PREVIEW_MODE": "Thread", "THREAD_PREVIEW_URL": "https://{threadId}.preview.{clientId}.example.com/"}
    config = load_config(env, require_input_queue=False)
    command = parse_command(json.dumps(message(chatThreadId="Chat_7", clientId="acme")), REPO)
    label = thread_label("Chat_7")
    assert config.preview_mode == "thread"
    assert config.preview_url_for(command) == f"https://{label}.preview.acme.example.com/"
    assert config.deploy_prefix_for(command) == f"threads/{label}/"
    assert thread_preview_url(config.thread_preview_url, "acme", "Chat_7") == config.preview_url_for(command)
    default = load_config({"PREVIEW_MODE": "thread"}, require_input_queue=False)
    assert default.preview_url_for(command) == f"https://{label}.edit.acme.webordinary.com"
    shared = load_config({"THREAD_PREVIEW_URL": env["THREAD_PREVIEW_URL"]}, require_input_queue=False)
    assert shared.preview_url_for(command) == "https://edit.acme.webordinary.com"  # shared: PREVIEW_URL, as before
    assert shared.deploy_prefix_for(command) == ""


@pytest.mark.parametrize(
    ("env", "message_part"),
    [
        ({"PREVIEW_MODE": "per-thread"}, "PREVIEW_MODE must be one of shared, thread, got 'per-thread'"),
        ({"THREAD_PREVIEW_URL": "https://edit.{clientId}.example.com"}, "THREAD_PREVIEW_URL must contain {threadId}"),
        ({"THREAD_PREVIEW_URL": "{threadId}.edit.example.com"}, "THREAD_PREVIEW_URL must be an http(s) URL template"),
        ({"THREAD_PREVIEW_URL": "ftp://{threadId}.example.com"}, "THREAD_PREVIEW_URL must be an http(s) URL template"),
        ({"THREAD_PREVIEW_URL": "https://{threadId} .example.com"}, "THREAD_PREVIEW_URL must not contain white space"),
    ],
)
def test_bad_preview_settings_stop_start_up_with_one_clear_error(env, message_part):
    with pytest.raises(ConfigError) as error:
        load_config(env, require_input_queue=False)
    assert str(error.value).startswith(message_part)
