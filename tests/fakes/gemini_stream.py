"""A strict, scripted fake of the Gemini API's streaming endpoint (what Gemini CLI speaks).

`POST /v1beta/models/<model>:streamGenerateContent?alt=sse` with the key in `x-goog-api-key`
(or `?key=`), a JSON body whose `contents` is a non-empty list of `user`/`model` turns made of
`parts`; every `functionResponse` part must answer a `functionCall` this server issued earlier
in the conversation (by name). Requests that break a rule are refused with the API's error shape
(`{"error": {"code", "message", "status"}}`) and recorded in `refusals()`. Scripted replies go
out as one SSE chunk: a candidate with the parts, `finishReason`, and `usageMetadata`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.scripted_server import FakeHandler, ScriptedServer
from tests.fakes.scripted_server import Seen as SeenRequest

_PATH = re.compile(r"^/v1beta/models/(?P<model>[\w.-]+):streamGenerateContent$")


@dataclass(frozen=True)
class FunctionCall:
    """One function call the model makes."""

    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """A scripted reply: text, function calls, or an HTTP error with its status text."""

    text: str = ""
    calls: tuple[FunctionCall, ...] = ()
    status: int = 200
    status_text: str = ""
    details: tuple[dict[str, Any], ...] = ()


def says(text: str) -> Reply:
    """A final answer."""
    return Reply(text=text)


def calls(*functions: FunctionCall, text: str = "") -> Reply:
    """A turn that calls functions."""
    return Reply(text=text, calls=functions)


def fails(status: int, status_text: str, message: str, *details: dict[str, Any]) -> Reply:
    """An API error, e.g. 429 RESOURCE_EXHAUSTED (with `google.rpc` details)."""
    return Reply(text=message, status=status, status_text=status_text, details=details)


def daily_quota_exhausted() -> Reply:
    """429 for a per-day quota, as the API sends it (a client must not retry it today)."""
    quota = {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                "quotaId": "GenerateRequestsPerDayPerProjectPerModel",
                "quotaDimensions": {"location": "global", "model": "gemini-2.5-pro"},
                "quotaValue": "100",
            }
        ],
    }
    message = "You exceeded your current quota, please check your plan and billing details."
    return fails(429, "RESOURCE_EXHAUSTED", message, quota)


Seen = SeenRequest[Reply]


class FakeGeminiStream(ScriptedServer[Reply]):
    """`with FakeGeminiStream(key) as fake:`; `fake.script(...)`; `fake.url` (the base URL)."""

    def __init__(self, key: str) -> None:
        super().__init__(key, _Handler)

    def ids_of(self, reply: Reply, number: int) -> list[str]:
        # Gemini matches a functionResponse to its call by the function's name.
        return [c.name for c in reply.calls]


def check(fake: FakeGeminiStream, path: str, query: str, headers: dict[str, str], body: Any) -> str:
    """Why the real API would refuse this request ("" if it would not)."""
    if not _PATH.match(path):
        return f"NOT_FOUND: unknown path {path}"
    params = parse_qs(query)
    given = headers.get("x-goog-api-key") or (params.get("key") or [""])[0]
    if given != fake.key:
        return "INVALID_ARGUMENT: API key not valid. Please pass a valid API key."
    if params.get("alt") != ["sse"]:
        return "INVALID_ARGUMENT: this fake streams only with alt=sse"
    if not isinstance(body, dict):
        return "INVALID_ARGUMENT: invalid JSON payload"
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "INVALID_ARGUMENT: contents is not specified"
    called: set[str] = set()
    for index, content in enumerate(contents):
        if not isinstance(content, dict) or content.get("role", "user") not in ("user", "model"):
            return f"INVALID_ARGUMENT: contents[{index}].role must be user or model"
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            return f"INVALID_ARGUMENT: contents[{index}].parts must not be empty"
        for part in parts:
            if "functionCall" in part:
                called.add(str(part["functionCall"].get("name")))
            if "functionResponse" in part and part["functionResponse"].get("name") not in called:
                return f"INVALID_ARGUMENT: contents[{index}]: functionResponse without a call"
    unknown = called - fake.issued_ids()
    if unknown:
        return f"INVALID_ARGUMENT: function calls this server never made: {sorted(unknown)}"
    return ""


def chunk(reply: Reply, seen: Seen, model: str) -> dict[str, Any]:
    """The one streamed chunk of a successful reply."""
    parts: list[dict[str, Any]] = [{"text": reply.text}] if reply.text else []
    parts += [{"functionCall": {"name": c.name, "args": c.args}} for c in reply.calls]
    prompt = len(json.dumps(seen.body)) // 4
    output = max(1, len(json.dumps(parts)) // 4)
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": output,
            "totalTokenCount": prompt + output,
        },
        "modelVersion": model,
    }


class _Handler(FakeHandler):
    def do_GET(self) -> None:
        fake: FakeGeminiStream = self.server.fake  # type: ignore[attr-defined]
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake.take(Seen(self.path, headers, None, refused=f"NOT_FOUND: GET {self.path}"))
        self._error(404, "NOT_FOUND", f"unknown path {self.path}")

    def do_POST(self) -> None:
        fake: FakeGeminiStream = self.server.fake  # type: ignore[attr-defined]
        headers, body = self.request_json()
        parts = urlsplit(self.path)
        refused = check(fake, parts.path, parts.query, headers, body)
        seen = Seen(path=self.path, headers=headers, body=body, refused=refused)
        reply = fake.take(seen)
        if refused:
            status = 404 if refused.startswith("NOT_FOUND") else 400
            self._error(status, refused.split(":", 1)[0], refused.split(": ", 1)[-1])
        elif reply is None:
            self._error(500, "INTERNAL", "fake: no scripted reply left")
        elif reply.status != 200:
            self._error(reply.status, reply.status_text, reply.text, reply.details)
        else:
            model = _PATH.match(parts.path).group("model")  # type: ignore[union-attr]
            data = f"data: {json.dumps(chunk(reply, seen, model))}\r\n\r\n".encode()
            self.send_body(200, data, "text/event-stream")

    def _error(
        self, code: int, status: str, message: str, details: tuple[dict[str, Any], ...] = ()
    ) -> None:
        error: dict[str, Any] = {"code": code, "message": message, "status": status}
        if details:
            error["details"] = list(details)
        error = {"error": error}
        self.send_body(code, json.dumps(error).encode(), "application/json")
