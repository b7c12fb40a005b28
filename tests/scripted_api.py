"""A scripted Anthropic Messages API on 127.0.0.1, so the real Claude Code CLI can run in tests.

The CLI reaches it through ANTHROPIC_BASE_URL. Each request's reply is decided from the conversation
the CLI sends (the instruction, the tool results so far), by the first registered `Script` whose
`matches` accepts the instruction; without one, `site_editor` below plays a small, predictable
"model" that understands "change the title to …" and "add a page …".

Replies are streamed as the real API streams them (server-sent events: message_start,
content_block_start/_delta/_stop for text and tool_use with input_json_delta, message_delta with
stop_reason, message_stop), or sent as one JSON message when the request does not ask for a stream.
Every request body is kept in `requests`, so a test can look at what the agent was sent.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Usage reported per reply: large enough that the CLI's cost figure is never zero.
INPUT_TOKENS = 1200
OUTPUT_TOKENS = 80


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class ApiError:
    """An HTTP error reply; `retry` false adds `x-should-retry: false` so the CLI gives up at once."""

    status: int = 500
    message: str = "scripted failure"
    retry: bool = False


@dataclass(frozen=True)
class Slow:
    """Wait before answering with `then` (a model that takes its time; an interrupt lands meanwhile)."""

    seconds: float
    then: Reply


Reply = ToolCall | list[ToolCall] | Text | ApiError | Slow


@dataclass
class Conversation:
    """What the CLI sent in one request, read the way a scripted model needs it."""

    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    def user_texts(self) -> list[str]:
        """Every text the user wrote (tool results and system reminders left out), oldest first."""
        texts = []
        for message in self.messages:
            if message.get("role") != "user":
                continue
            for block in _blocks(message):
                text = block.get("text", "") if block.get("type") == "text" else ""
                if text and not text.lstrip().startswith("<system-reminder>"):
                    texts.append(text.strip())
        return texts

    @property
    def instruction(self) -> str:
        """The newest instruction: the last text the user wrote."""
        texts = self.user_texts()
        return texts[-1] if texts else ""

    def tool_results(self) -> list[dict[str, Any]]:
        """Tool results since the newest instruction, oldest first: {"content": str, "is_error": bool}."""
        results: list[dict[str, Any]] = []
        for message in self.messages:
            if message.get("role") != "user":
                continue
            for block in _blocks(message):
                if block.get("type") == "text" and not block.get("text", "").lstrip().startswith("<system-"):
                    results = []  # a new instruction starts a new round
                elif block.get("type") == "tool_result":
                    results.append({"content": _result_text(block), "is_error": bool(block.get("is_error"))})
        return results

    @property
    def step(self) -> int:
        """How many tool rounds of the newest instruction are done (0 on its first request)."""
        return len(self.tool_results())

    @property
    def cwd(self) -> str:
        """The working directory the CLI states in its system prompt or a system message."""
        texts = [_text_of(self.body.get("system"))] + [_text_of(m.get("content")) for m in self.messages]
        found = re.search(r"Primary working directory: (\S+)", "\n".join(texts))
        return found.group(1) if found else ""

    def path(self, relative: str) -> str:
        return f"{self.cwd}/{relative}"


Responder = Callable[[Conversation], Reply]


@dataclass
class Script:
    matches: Callable[[str], bool]
    respond: Responder


@dataclass
class ScriptedAPI:
    scripts: list[Script] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def when(self, needle: str, respond: Responder) -> None:
        """Answer conversations whose newest instruction contains `needle` with `respond`."""
        self.scripts.insert(0, Script(lambda text: needle in text, respond))

    def reply_for(self, conversation: Conversation) -> Reply:
        for script in self.scripts:
            if script.matches(conversation.instruction):
                return script.respond(conversation)
        return site_editor(conversation)

    def conversations(self, needle: str = "") -> list[Conversation]:
        """Every recorded main-loop request (one with tools) whose newest instruction contains needle."""
        found = [Conversation(body) for body in list(self.requests) if body.get("tools")]
        return [c for c in found if needle in c.instruction]

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ScriptedAPI:
        api = self

        class Handler(_Handler):
            owner = api

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="scripted-api", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


# The default "model": predictable edits of the demo site, the way a real agent goes about them.


def site_editor(conversation: Conversation) -> Reply:
    instruction = conversation.instruction
    title = re.search(r"change the title to (.+)", instruction, re.IGNORECASE)
    if title:
        return edit_file(conversation, "src/layouts/Base.astro", "<h1>Amelia Stamps</h1>", f"<h1>{_clean(title)}</h1>")
    page = re.search(r"add a page (?:called |named )?([a-z0-9-]+)", instruction, re.IGNORECASE)
    if page:
        name = page.group(1).lower()
        return write_file(conversation, f"src/pages/{name}.astro", new_page(name.replace("-", " ").title()))
    return Text("I am a scripted model; I can change the title or add a page.")


def edit_file(conversation: Conversation, relative: str, old: str, new: str, done: str = "") -> Reply:
    """Read, then Edit (the CLI refuses an Edit of a file not read first), then say what was done."""
    path = conversation.path(relative)
    if conversation.step == 0:
        return ToolCall("Read", {"file_path": path})
    if conversation.step == 1:
        return ToolCall("Edit", {"file_path": path, "old_string": old, "new_string": new})
    return Text(done or f"Changed {relative}: {old} → {new}.")


def write_file(conversation: Conversation, relative: str, content: str, done: str = "") -> Reply:
    if conversation.step == 0:
        return ToolCall("Write", {"file_path": conversation.path(relative), "content": content})
    return Text(done or f"Created {relative}.")


def steps(*replies: Reply | Callable[[Conversation], Reply]) -> Responder:
    """A responder that answers the n-th request of an instruction with the n-th reply (the last repeats)."""

    def respond(conversation: Conversation) -> Reply:
        reply = replies[min(conversation.step, len(replies) - 1)]
        return reply(conversation) if callable(reply) else reply

    return respond


def new_page(title: str) -> str:
    return f'---\nimport Base from "../layouts/Base.astro";\n---\n<Base title="{title}">\n  <h2>{title}</h2>\n</Base>\n'


def _clean(found: re.Match[str]) -> str:
    return found.group(1).strip().strip("\"'“”.")


# HTTP and the streaming protocol.


class _Handler(BaseHTTPRequestHandler):
    owner: ScriptedAPI
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = {}
        path = self.path.split("?")[0]
        if path.endswith("/count_tokens"):
            self._json(200, {"input_tokens": INPUT_TOKENS})
            return
        if not path.endswith("/v1/messages"):
            self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": path}})
            return
        self.owner.requests.append(body)
        conversation = Conversation(body)
        # Side requests (titles, summaries) carry no tools: a short text is all they need.
        reply = self.owner.reply_for(conversation) if body.get("tools") else Text("Scripted reply.")
        while isinstance(reply, Slow):
            time.sleep(reply.seconds)
            reply = reply.then
        if isinstance(reply, ApiError):
            headers = {} if reply.retry else {"x-should-retry": "false"}
            error = {"type": "error", "error": {"type": "api_error", "message": reply.message}}
            self._json(reply.status, error, headers)
            return
        blocks = _content(reply)
        model = body.get("model", "claude-sonnet-4-5")
        if body.get("stream"):
            self._stream(model, blocks)
        else:
            message = _message(model, blocks)
            message["usage"]["output_tokens"] = OUTPUT_TOKENS
            self._json(200, message)

    def do_GET(self) -> None:
        self._json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:20]}")
        for name, value_ in (headers or {}).items():
            self.send_header(name, value_)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, model: str, blocks: list[dict[str, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:20]}")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for name, data in _events(model, blocks):
                self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the CLI went away (interrupted)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _content(reply: Reply) -> list[dict[str, Any]]:
    calls = reply if isinstance(reply, list) else [reply]
    blocks: list[dict[str, Any]] = []
    for call in calls:
        if isinstance(call, Text):
            blocks.append({"type": "text", "text": call.text})
        elif isinstance(call, ToolCall):
            blocks.append(
                {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": call.name, "input": call.input}
            )
    return blocks


def _message(model: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1},
    }


def _events(model: str, blocks: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    message = _message(model, [])
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    message["stop_reason"] = None
    yield "message_start", {"type": "message_start", "message": message}
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            yield (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
            )
            for piece in _pieces(block["text"]):
                yield (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}},
                )
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": start}
            for piece in _pieces(json.dumps(block["input"])):
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": OUTPUT_TOKENS},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _pieces(text: str, size: int = 40) -> Iterator[str]:
    for start in range(0, max(len(text), 1), size):
        yield text[start : start + size]


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in content or [] if isinstance(block, dict)]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


if __name__ == "__main__":  # a standalone server for trying the CLI by hand
    server = ScriptedAPI().start()
    print(server.base_url, flush=True)
    threading.Event().wait()
