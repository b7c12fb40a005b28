"""The marker the fake agent writes into the home page, computed the same way for assertions."""

import hashlib


def marker(prompt: str) -> str:
    return "fake-agent-" + hashlib.sha256(prompt.encode()).hexdigest()[:12]
