"""Reading one environment variable into a checked value; each helper raises ConfigError naming it."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any


class ConfigError(ValueError):
    """A configuration variable is missing or malformed; the message names it."""


TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off"}


def text(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def secret(env: Mapping[str, str], name: str) -> str | None:
    """NAME, or the content of the file NAME_FILE names (an ECS secret, a mounted file); never both."""
    value, path = text(env, name, None), text(env, f"{name}_FILE", None)
    if value is not None and path is not None:
        raise ConfigError(f"{name} and {name}_FILE are both set: keep one")
    if path is None:
        return value
    return read_secret_file(f"{name}_FILE", path)


def read_secret_file(variable: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            content = handle.read().strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{variable}: cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    if not content:
        raise ConfigError(f"{variable}: {path} is empty")
    return content


def required_text(env: Mapping[str, str], name: str, default: str) -> str:
    value = text(env, name, default)
    assert value is not None  # default is a str
    return value


def number(env: Mapping[str, str], name: str, default: float, *, minimum: float, integer: bool) -> Any:
    raw = text(env, name, None)
    if raw is None:
        return int(default) if integer else float(default)
    try:
        value: float = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")) or value < minimum:  # NaN/inf check
        raise ConfigError(f"{name} must be at least {minimum:g}, got {raw!r}")
    return value


def flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = text(env, name, None)
    if raw is None:
        return default
    if raw.lower() in TRUE_WORDS:
        return True
    if raw.lower() in FALSE_WORDS:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = required_text(env, name, default).lower()
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def command(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    raw = required_text(env, name, default)
    try:
        words = tuple(shlex.split(raw))
    except ValueError as error:
        raise ConfigError(f"{name} is not a valid command line ({error}): {raw!r}") from None
    if not words:
        raise ConfigError(f"{name} must name a command")
    return words


def url(env: Mapping[str, str], name: str, *, required: bool = False) -> str | None:
    raw = text(env, name, None)
    if raw is None:
        if required:
            raise ConfigError(f"{name} is required")
        return None
    if not raw.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http(s) URL, got {raw!r}")
    return raw


def template(env: Mapping[str, str], name: str, default: str) -> str:
    raw = required_text(env, name, default)
    if any(ch.isspace() for ch in raw):
        raise ConfigError(f"{name} must not contain white space, got {raw!r}")
    return raw


def relative_dir(env: Mapping[str, str], name: str, default: str) -> str:
    raw = required_text(env, name, default)
    parts = raw.replace("\\", "/").split("/")
    if raw.startswith("/") or ".." in parts or raw in (".", ""):
        raise ConfigError(f"{name} must be a folder inside the checkout, got {raw!r}")
    return raw


def header_value(env: Mapping[str, str], name: str, default: str) -> str:
    raw = required_text(env, name, default)
    # It becomes an HTTP header: a control character would corrupt or split the request.
    if not all(" " <= ch <= "~" for ch in raw):
        raise ConfigError(f"{name} must be printable ASCII (a Cache-Control value), got {raw!r}")
    return raw
