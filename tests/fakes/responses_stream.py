"""A strict, scripted fake of OpenAI's Responses API (`POST /v1/responses`, streaming SSE).

What Codex CLI speaks. Each request must carry `Authorization: Bearer <key>`, a JSON body with
`model`, a non-empty `input` list and `stream: true`; every `function_call_output` in the input
must answer a `function_call` that this server issued and that appears before it (as the real
API refuses otherwise). Requests that break a rule are refused with the real API's error shape
and recorded in `refusals()`. Scripted replies are answered in order as the event stream the
API sends: `response.created`, `response.output_item.added`/`.done` per item, then
`response.completed` with usage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.fakes.scripted_server import FakeHandler, ScriptedServer
from tests.fakes.scripted_server import Seen as SeenRequest

RESPONSES_PATH = "/v1/responses"


@dataclass(frozen=True)
class FunctionCall:
    """One function call the model makes; `namespace` names a tool group's (an MCP server's,
    as Codex offers them: `{"type": "namespace", "name": "mcp__somas", "tools": [...]}`)."""

    name: str
    arguments: dict[str, Any]
    namespace: str = ""


@dataclass(frozen=True)
class Reply:
    """A scripted response: text, function calls, or an HTTP error."""

    text: str = ""
    calls: tuple[FunctionCall, ...] = ()
    status: int = 200
    error_type: str = ""
    code: str = ""


def says(text: str) -> Reply:
    """A final answer (an assistant message)."""
    return Reply(text=text)


def calls(*functions: FunctionCall, text: str = "") -> Reply:
    """A response that asks for function calls."""
    return Reply(text=text, calls=functions)


def fails(status: int, error_type: str, code: str, message: str) -> Reply:
    """An API error, e.g. 429 `insufficient_quota`."""
    return Reply(text=message, status=status, error_type=error_type, code=code)


Seen = SeenRequest[Reply]


class FakeResponsesStream(ScriptedServer[Reply]):
    """`with FakeResponsesStream(key) as fake:`; `fake.script(...)`; `fake.url` (`…/v1`)."""

    def __init__(self, key: str) -> None:
        super().__init__(key, _Handler)

    @property
    def url(self) -> str:
        """The base URL to give the engine: `http://127.0.0.1:<port>/v1`."""
        return f"{self.origin}/v1"

    def ids_of(self, reply: Reply, number: int) -> list[str]:
        return [f"call_fake_{number}_{i}" for i in range(len(reply.calls))]


def check(fake: FakeResponsesStream, headers: dict[str, str], body: Any) -> str:
    """Why the real API would refuse this request ("" if it would not)."""
    if headers.get("authorization") != f"Bearer {fake.key}":
        return "invalid_api_key: Incorrect API key provided"
    if not isinstance(body, dict):
        return "invalid JSON body"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: required"
    if isinstance(body.get("input"), str) and body["input"]:
        return ""
    if not isinstance(body.get("input"), list) or not body["input"]:
        return "input: a non-empty string or list is required"
    if body.get("tools") is not None and not isinstance(body["tools"], list):
        return "tools: must be a list"
    return _check_input(body["input"], fake.issued_ids())


def _check_input(items: list[Any], issued: set[str]) -> str:
    called: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            return f"input[{index}]: must be an object"
        kind = item.get("type", "message")
        if kind == "function_call":
            called.add(str(item.get("call_id")))
        if kind == "function_call_output" and item.get("call_id") not in called:
            return f"input[{index}]: No tool call found for function call output"
    unknown = called - issued
    return f"input: function calls this server never issued: {sorted(unknown)}" if unknown else ""


def sse_events(reply: Reply, seen: Seen, model: str) -> list[dict[str, Any]]:
    """The event stream of a successful reply, as the Responses API streams it."""
    number = len(seen.ids)
    response_id = f"resp_fake_{id(seen)}"
    items: list[dict[str, Any]] = []
    if reply.text:
        content = [{"type": "output_text", "text": reply.text, "annotations": []}]
        items.append(
            {
                "type": "message",
                "id": f"msg_fake_{number}",
                "role": "assistant",
                "status": "completed",
                "content": content,
            }
        )
    for call_id, function in zip(seen.ids, reply.calls, strict=True):
        item = {
            "type": "function_call",
            "id": f"fc_{call_id}",
            "call_id": call_id,
            "name": function.name,
            "arguments": json.dumps(function.arguments),
            "status": "completed",
        }
        if function.namespace:
            item["namespace"] = function.namespace
        items.append(item)
    base = {"id": response_id, "object": "response", "model": model}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {**base, "status": "in_progress", "output": []}}
    ]
    for index, item in enumerate(items):
        events.append({"type": "response.output_item.added", "output_index": index, "item": item})
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    input_tokens = len(json.dumps(seen.body)) // 4
    output_tokens = max(1, len(json.dumps(items)) // 4)
    usage = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }
    done = {**base, "status": "completed", "output": items, "usage": usage}
    events.append({"type": "response.completed", "response": done})
    return events


class _Handler(FakeHandler):
    def do_GET(self) -> None:
        fake: FakeResponsesStream = self.server.fake  # type: ignore[attr-defined]
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake.take(Seen(self.path, headers, None, refused=f"unexpected GET {self.path}"))
        self._error(404, "invalid_request_error", "", f"unknown path {self.path}")

    def do_POST(self) -> None:
        fake: FakeResponsesStream = self.server.fake  # type: ignore[attr-defined]
        headers, body = self.request_json()
        path = self.path.split("?")[0]
        refused = check(fake, headers, body) if path == RESPONSES_PATH else f"unknown path {path}"
        seen = Seen(path=self.path, headers=headers, body=body, refused=refused)
        reply = fake.take(seen)
        if refused:
            status = 401 if refused.startswith("invalid_api_key") else 400
            status = status if path == RESPONSES_PATH else 404
            self._error(status, "invalid_request_error", "", refused)
        elif reply is None:
            self._error(500, "server_error", "", "fake: no scripted reply left")
        elif reply.status != 200:
            self._error(reply.status, reply.error_type, reply.code, reply.text)
        elif not body.get("stream"):
            self._error(400, "invalid_request_error", "", "fake: only streaming is scripted")
        else:
            events = sse_events(reply, seen, body["model"])
            data = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
            self.send_body(200, data.encode(), "text/event-stream")

    def _error(self, status: int, kind: str, code: str, message: str) -> None:
        error = {"message": message, "type": kind, "param": None, "code": code or None}
        self.send_body(status, json.dumps({"error": error}).encode(), "application/json")
