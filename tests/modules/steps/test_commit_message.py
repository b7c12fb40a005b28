from __future__ import annotations

import pytest

from steps.git.commit_message import commit_message, subject_from
from supervisor.contract.command import parse_command


@pytest.mark.parametrize(
    ("instruction", "subject"),
    [
        ("make the header blue", "Make the header blue"),
        ("Please make the header blue.", "Make the header blue"),
        ("Can you please add a footer?", "Add a footer"),
        ("hey, could you fix the typo on the about page", "Fix the typo on the about page"),
        ("pls kindly remove the banner", "Remove the banner"),
        ("\n\n  Update prices\nsecond line ignored", "Update prices"),
        ("please", "Apply chat instruction"),
        ("Pleasant colours for the header", "Pleasant colours for the header"),
        ("Canyon photos on the home page", "Canyon photos on the home page"),
    ],
)
def test_subject(instruction, subject):
    assert subject_from(instruction) == subject


def test_long_subjects_are_cut_at_a_word_within_72_characters():
    subject = subject_from("Rewrite " + "the very long heading text " * 10)
    assert len(subject) <= 72 and subject.endswith("…") and not subject.endswith(" …")


def test_message_layout_and_trailers():
    command = parse_command(
        '{"instruction": "Please fix it\\n\\nDetails here", "commandId": "c-1", "chatThreadId": "t",'
        ' "sessionId": "s-1", "clientId": "acme", "userId": "u1"}',
        "/srv/site.git",
    )
    text = commit_message(command, ["a.txt", "b/c.astro"])
    assert text == (
        "Fix it\n\nPlease fix it\n\nDetails here\n\nFiles changed:\n- a.txt\n- b/c.astro\n\n"
        "Session-Id: s-1\nCommand-Id: c-1\nUser-Id: u1\n"
    )
    assert commit_message(command, ["a"], wip=True).startswith("WIP: Fix it\n")
