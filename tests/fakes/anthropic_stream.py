"""A strict fake of Anthropic's Messages API with streaming (SSE), for real engine CLIs.

Claude Code talks to it as to the real service (`ANTHROPIC_BASE_URL`). Each request is checked
(key, version header, body fields, alternating roles, every `tool_result` answering a
`tool_use` of the conversation) and answered with the next scripted `Reply`: text and tool
calls, streamed as the real API streams them, or an error in the API's shape. A request with no
reply left is answered 500 and counted, so a test that runs past its script fails loudly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.fakes.scripted_server import FakeHandler, ScriptedServer
from tests.fakes.scripted_server import Seen as SeenRequest

MESSAGES_PATH = "/v1/messages"


@dataclass(frozen=True)
class ToolUse:
    """One tool call the model makes."""

    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """One scripted model turn: some text, tool calls, or an HTTP error."""

    text: str = ""
    tools: tuple[ToolUse, ...] = ()
    status: int = 200
    error_type: str = ""


def says(text: str) -> Reply:
    """A final answer."""
    return Reply(text=text)


def calls(*tools: ToolUse, text: str = "") -> Reply:
    """A turn that asks for tools."""
    return Reply(text=text, tools=tools)


def fails(status: int, error_type: str, message: str) -> Reply:
    """An API error (e.g. 429 rate_limit_error)."""
    return Reply(text=message, status=status, error_type=error_type)


Seen = SeenRequest[Reply]


class FakeAnthropicStream(ScriptedServer[Reply]):
    """`with FakeAnthropicStream(key) as fake:`; `fake.script(...)`; `fake.url`; `fake.seen`."""

    def __init__(self, key: str) -> None:
        super().__init__(key, _Handler)

    def ids_of(self, reply: Reply, number: int) -> list[str]:
        return [f"toolu_fake_{number}_{i}" for i in range(len(reply.tools))]


def check(fake: FakeAnthropicStream, headers: dict[str, str], body: Any) -> str:
    """Why the real API would refuse this request ("" if it would not)."""
    # The API takes the key as `x-api-key` (Claude Code) or as a bearer token (the SDK).
    if fake.key not in (headers.get("x-api-key"), headers.get("authorization", "")[7:]):
        return "authentication_error: invalid x-api-key"
    if not headers.get("anthropic-version"):
        return "anthropic-version: header is required"
    if not isinstance(body, dict):
        return "invalid JSON body"
    for name, kind in (("model", str), ("max_tokens", int), ("messages", list)):
        if not isinstance(body.get(name), kind):
            return f"{name}: Field required"
    if body["max_tokens"] < 1 or not body["messages"]:
        return "max_tokens and messages must be non-empty"
    return _check_messages(body["messages"], fake.issued_ids())


def _check_messages(messages: list[Any], issued: set[str]) -> str:
    used: set[str] = set()
    # The API combines consecutive turns of one role into one turn; it needs valid roles and a
    # first message from the user.
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant") or (index == 0 and role != "user"):
            return f"messages.{index}: role must be user or assistant, and the first user"
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "tool_use":
                used.add(str(block.get("id")))
            if block.get("type") == "tool_result" and block.get("tool_use_id") not in used:
                return f"messages.{index}: tool_result without a matching tool_use"
    unknown = used - issued
    return f"messages: tool_use ids this server never issued: {sorted(unknown)}" if unknown else ""


def sse_events(reply: Reply, seen: Seen, model: str) -> list[tuple[str, dict[str, Any]]]:
    """The event stream of a successful reply, as the Messages API streams it."""
    usage = {"input_tokens": len(json.dumps(seen.body)) // 4, "output_tokens": 1}
    message: dict[str, Any] = {
        "id": f"msg_fake_{len(seen.ids)}",
        "type": "message",
        "role": "assistant",
    }
    message |= {"model": model, "content": [], "stop_reason": None, "stop_sequence": None}
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {**message, "usage": usage}})
    ]
    blocks: list[tuple[dict[str, Any], dict[str, Any]]] = []
    if reply.text:
        blocks.append(({"type": "text", "text": ""}, {"type": "text_delta", "text": reply.text}))
    for tool_id, tool in zip(seen.ids, reply.tools, strict=True):
        start = {"type": "tool_use", "id": tool_id, "name": tool.name, "input": {}}
        blocks.append((start, {"type": "input_json_delta", "partial_json": json.dumps(tool.input)}))
    for index, (start, delta) in enumerate(blocks):
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    stop = "tool_use" if reply.tools else "end_turn"
    out_tokens = max(1, (len(reply.text) + len(json.dumps([t.input for t in reply.tools]))) // 4)
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": out_tokens},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


class _Handler(FakeHandler):
    extra_headers = (("request-id", "req_fake"),)

    def do_GET(self) -> None:
        self._json(
            404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}}
        )

    def do_POST(self) -> None:
        fake: FakeAnthropicStream = self.server.fake  # type: ignore[attr-defined]
        headers, body = self.request_json()
        path = self.path.split("?")[0]
        refused = check(fake, headers, body) if path == MESSAGES_PATH else f"unknown path {path}"
        seen = Seen(path=self.path, headers=headers, body=body, refused=refused)
        reply = fake.take(seen)
        if refused:
            status = (
                401
                if refused.startswith("authentication")
                else 400
                if path == MESSAGES_PATH
                else 404
            )
            kind = "authentication_error" if status == 401 else "invalid_request_error"
            self._error(status, kind, refused)
        elif reply is None:
            self._error(500, "api_error", "fake: no scripted reply left")
        elif reply.status != 200:
            self._error(reply.status, reply.error_type, reply.text)
        elif body.get("stream"):
            self._stream(sse_events(reply, seen, body["model"]))
        else:
            self._error(400, "invalid_request_error", "fake: only streaming requests are scripted")

    def _stream(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        data = "".join(
            f"event: {name}\ndata: {json.dumps(payload)}\n\n" for name, payload in events
        )
        self.send_body(200, data.encode(), "text/event-stream")

    def _error(self, status: int, kind: str, message: str) -> None:
        self._json(status, {"type": "error", "error": {"type": kind, "message": message}})

    def _json(self, status: int, payload: Any) -> None:
        self.send_body(status, json.dumps(payload).encode(), "application/json")
