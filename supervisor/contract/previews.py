"""Where a preview lives (PREVIEW_MODE): the shared site of a client's bucket, or one folder per chat thread.

In thread mode a thread's build goes to `threads/{label}/` of its client's bucket and its URL is
THREAD_PREVIEW_URL with `{threadId}` replaced by the same label. A thread id may hold anything but control
characters (1 to 128 of them), and both a DNS label and an S3 prefix need less, so the label is:

- the id itself when it is already a lower-case DNS label (`[a-z0-9]`, inner `-`, at most 63) with no `--`
  (IDNA reserves it) and no tail of 8 hex digits (`…-0123abcd`, or exactly 8 of them);
- otherwise a slug of the id (lower case, every run of other characters one `-`, at most 54) followed by
  `-` and the first 8 hex digits of the id's SHA-256 (only the digits when the slug is empty).

Kept ids never end in 8 hex digits and made ones always do, so two ids share a label only when their
slugs and hashes match. The CloudFront function (deploy/thread-preview-function.js) maps a host's first
label straight to `threads/{label}/` and refuses what `is_thread_label` refuses.
"""

from __future__ import annotations

import hashlib
import re

PREVIEW_MODES = ("shared", "thread")
SHARED, THREAD = PREVIEW_MODES
# The bucket's folder of thread previews: a shared-mode deploy never lists, replaces or deletes in it.
THREADS_PREFIX = "threads/"
MAX_LABEL = 63
HASH_DIGITS = 8
LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
HASH_TAIL = re.compile(rf"(^|-)[0-9a-f]{{{HASH_DIGITS}}}$")
DEFAULT_THREAD_PREVIEW_URL = "https://{threadId}.edit.{clientId}.webordinary.com"


def is_thread_label(value: str) -> bool:
    """Whether `value` is a label thread_label can give: a lower-case DNS label without `--`."""
    return LABEL.fullmatch(value) is not None and "--" not in value


def thread_label(thread_id: str) -> str:
    """The thread's DNS label and folder name (module docstring)."""
    if is_thread_label(thread_id) and not HASH_TAIL.search(thread_id):
        return thread_id
    slug = re.sub(r"[^a-z0-9]+", "-", thread_id.lower()).strip("-")
    slug = slug[: MAX_LABEL - HASH_DIGITS - 1].rstrip("-")
    digest = hashlib.sha256(thread_id.encode()).hexdigest()[:HASH_DIGITS]
    return f"{slug}-{digest}" if slug else digest


def thread_prefix(thread_id: str) -> str:
    """The thread's folder in its client's bucket: `threads/{label}/`."""
    return f"{THREADS_PREFIX}{thread_label(thread_id)}/"


def thread_preview_url(template: str, client_id: str, thread_id: str) -> str:
    """THREAD_PREVIEW_URL for a thread: `{threadId}` is its label, `{clientId}` the client."""
    return template.replace("{clientId}", client_id).replace("{threadId}", thread_label(thread_id))
