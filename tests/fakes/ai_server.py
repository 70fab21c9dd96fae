"""A fake AI provider on 127.0.0.1 speaking OpenAI Chat Completions and Anthropic Messages.

Strict on what it accepts (auth header, required fields, message order), with the providers'
own error shapes, so the real SDKs are exercised as against the real services. Each API has a
queue of scripted answers (`script`), then a default (`default`): a valid reply built from the
demo recording for the stage the request is for, an invalid reply, 429 with or without
Retry-After, 500, quota exhausted, slow, or a hang.

Tool calling: a scripted *policy* (`policy(api, fn)`) answers tool-loop requests. It gets the
conversation so far as provider-neutral exchanges (the calls it made and the results the client
sent back) and returns the next tool calls, so a scripted model reacts to what the tools really
answered. Requests are checked as the real APIs check them: every tool call answered exactly
once, in the next message(s), and only tools the request offers may be called.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests import tiers
from tests.scenarios import demo_output

OPENAI = "openai"
ANTHROPIC = "anthropic"
_PATHS = {"/v1/chat/completions": OPENAI, "/v1/messages": ANTHROPIC}
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

# An answer: HTTP status and JSON body.
Answer = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class Action:
    """How the fake answers one request."""

    kind: str
    output: dict[str, Any] | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def ok(output: dict[str, Any] | None = None) -> Action:
    """A valid reply: `output`, or the demo recording's reply for the requested stage (in a
    tool loop: a call of `finish` with it)."""
    return Action("ok", output=output)


def invalid() -> Action:
    """A 200 whose content does not match the schema (OpenAI: not even JSON)."""
    return Action("invalid")


def rate_limited(retry_after: str | None = None, **headers: str) -> Action:
    """429; `retry_after` becomes the Retry-After header, other headers as given."""
    extra = {k.replace("_", "-"): v for k, v in headers.items()}
    if retry_after is not None:
        extra["retry-after"] = retry_after
    return Action("rate_limited", status=429, headers=extra)


def server_error(status: int = 500) -> Action:
    """A 5xx (529 is Anthropic's overloaded)."""
    return Action("server_error", status=status)


def quota() -> Action:
    """The account is out of credit."""
    return Action("quota", status=429)


def refusal() -> Action:
    """A 200 in which the model declines (OpenAI's `message.refusal`)."""
    return Action("refusal")


def garbage() -> Action:
    """A 200 that is not JSON at all (a proxy's error page)."""
    return Action("garbage")


def slow(seconds: float) -> Action:
    """A valid reply, after `seconds` (longer than the client's timeout: a timeout)."""
    return Action("ok", delay=seconds)


def hang() -> Action:
    """Never answers (until the server closes)."""
    return Action("hang")


@dataclass
class Request:
    """One request the fake received."""

    api: str
    headers: dict[str, str]
    body: Any
    answer: str


@dataclass(frozen=True)
class Exchange:
    """One tool call the scripted model made and the result the client sent back for it."""

    name: str
    arguments: dict[str, Any]
    result: str
    is_error: bool


@dataclass(frozen=True)
class ToolContext:
    """What a policy sees of a tool-loop request."""

    turn: int  # the number of the turn being asked for (1 = first)
    exchanges: list[Exchange]
    tools: list[str]  # names of the tools the request offers
    user: str  # the first user message (the task)

    def last(self, name: str | None = None) -> Exchange:
        """The latest exchange (of tool `name`)."""
        return [e for e in self.exchanges if name is None or e.name == name][-1]


@dataclass(frozen=True)
class Calls:
    """A policy's answer: tool calls (name, arguments) and optional text."""

    calls: list[tuple[str, dict[str, Any]]]
    text: str = ""


Policy = Callable[[ToolContext], Calls]


def for_stage(stage: str, policy: Policy) -> Policy:
    """`policy` for the tool loops of `stage`; other stages' loops finish with the demo's reply."""

    def answer(ctx: ToolContext) -> Calls:
        task = _task_of(ctx.user)
        if task.get("stage") == stage:
            return policy(ctx)
        output = demo_output(str(task.get("stage", "")))
        return Calls([("finish", {k: v for k, v in output.items() if k != "files"})])

    return answer


class FakeAIServer:
    """Run with `with FakeAIServer(...) as server:`; `server.calls(api)` counts requests."""

    def __init__(self, openai_key: str, anthropic_key: str, github_token: str = "") -> None:
        self.keys = {OPENAI: openai_key, ANTHROPIC: anthropic_key}
        # GitHub Models speaks the OpenAI wire format with the workflow's token.
        self.github_token = github_token
        self.queues: dict[str, list[Action]] = {OPENAI: [], ANTHROPIC: []}
        self.default: dict[str, Action] = {OPENAI: ok(), ANTHROPIC: ok()}
        self.requests: list[Request] = []
        self.policies: dict[str, Policy] = {}
        # Departures from what a real model could do (calling a tool not offered): must stay [].
        self.violations: list[str] = []
        # Called with each request's number (1, 2, ...) before it is answered: a test moves its
        # clock, or kills the client, at a given request.
        self.on_request: Callable[[int], None] | None = None
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.httpd = _Server(self)
        self.httpd.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval, once per test.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> FakeAIServer:
        tiers.uses(tiers.FAKES, "starts the fake AI server")
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def script(self, api: str, *actions: Action) -> None:
        """Answer the next requests to `api` with `actions`, in order."""
        with self.lock:
            self.queues[api].extend(actions)

    def always(self, api: str, action: Action) -> None:
        """Answer every unscripted request to `api` with `action`."""
        self.default[api] = action

    def policy(self, api: str, policy: Policy) -> None:
        """Answer `api`'s unscripted requests with the tool calls `policy` chooses."""
        self.policies[api] = policy

    def calls(self, api: str | None = None) -> int:
        """Requests received (for one API, or both)."""
        return sum(1 for r in self.requests if api is None or r.api == api)

    def stages(self, api: str | None = None) -> list[str]:
        """The stage each well-formed request asked for, in order."""
        return [
            _stage_of(r.api, r.body)
            for r in self.requests
            if (api is None or r.api == api) and isinstance(r.body, dict)
        ]

    def next_action(self, api: str) -> Action:
        with self.lock:
            if self.queues[api]:
                return self.queues[api].pop(0)
            return Action("policy") if api in self.policies else self.default[api]


# -- validation, with each provider's error shape ---------------------------------------------


def _openai_error(status: int, message: str, kind: str, code: str | None = None) -> Answer:
    return status, {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _anthropic_error(status: int, kind: str, message: str) -> Answer:
    return status, {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_fake",
    }


def _check_openai(fake: FakeAIServer, headers: dict[str, str], body: Any) -> Answer | None:
    given = headers.get("authorization", "").removeprefix("Bearer ").strip()
    if given not in (fake.keys[OPENAI], fake.github_token or None):
        # Like the real service, the message quotes the key it was given.
        return _openai_error(
            401,
            f"Incorrect API key provided: {given}. You can find your API key in your account.",
            "invalid_request_error",
            "invalid_api_key",
        )
    if not isinstance(body, dict):
        return _openai_error(400, "We could not parse the JSON body.", "invalid_request_error")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _openai_error(400, "you must provide a model parameter", "invalid_request_error")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _openai_error(400, "'messages' must be a non-empty array", "invalid_request_error")
    for index, message in enumerate(messages):
        roles = ("system", "developer", "user", "assistant", "tool")
        if not isinstance(message, dict) or message.get("role") not in roles:
            return _openai_error(
                400, f"Invalid value for 'messages[{index}].role'", "invalid_request_error"
            )
        content = message.get("content")
        calls_given = message.get("role") == "assistant" and message.get("tool_calls")
        if not isinstance(content, str | list) and not (calls_given and content is None):
            return _openai_error(
                400, f"Missing content in 'messages[{index}]'", "invalid_request_error"
            )
    refused = _check_openai_tools(body) or _check_openai_tool_pairing(messages)
    if refused is not None:
        return refused
    fmt = body.get("response_format")
    if fmt is not None:
        schema = fmt.get("json_schema") if isinstance(fmt, dict) else None
        if fmt.get("type") not in ("text", "json_object", "json_schema") or (
            fmt.get("type") == "json_schema"
            and (
                not isinstance(schema, dict)
                or not _NAME.match(str(schema.get("name", "")))
                or not isinstance(schema.get("schema"), dict)
            )
        ):
            return _openai_error(400, "Invalid 'response_format'", "invalid_request_error")
    for limit in ("max_tokens", "max_completion_tokens"):
        if limit in body and (not isinstance(body[limit], int) or body[limit] < 1):
            return _openai_error(400, f"Invalid '{limit}'", "invalid_request_error")
    return None


def _check_openai_tools(body: dict[str, Any]) -> Answer | None:
    """`tools` and `tool_choice` as Chat Completions documents them."""
    tools = body.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            return _openai_error(400, "'tools' must be a non-empty array", "invalid_request_error")
        for index, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if (
                not isinstance(function, dict)
                or tool.get("type") != "function"
                or not _NAME.match(str(function.get("name", "")))
                or not isinstance(function.get("parameters", {}), dict)
                or function.get("parameters", {}).get("type", "object") != "object"
            ):
                return _openai_error(
                    400, f"Invalid value for 'tools[{index}]'", "invalid_request_error"
                )
            names.append(function["name"])
        if len(set(names)) != len(names):
            return _openai_error(400, "Tool names must be unique.", "invalid_request_error")
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if tools is None:
        return _openai_error(
            400,
            "'tool_choice' is only allowed when 'tools' are specified.",
            "invalid_request_error",
        )
    named = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
    if choice not in ("none", "auto", "required") and named not in names:
        return _openai_error(400, "Invalid value for 'tool_choice'", "invalid_request_error")
    return None


def _check_openai_tool_pairing(messages: list[dict[str, Any]]) -> Answer | None:
    """Each assistant tool call answered by one `tool` message right after it, none other."""
    owed: list[str] = []
    for index, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in owed:
                return _openai_error(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    "invalid_request_error",
                )
            owed.remove(call_id)
            continue
        if owed:
            return _openai_error(
                400,
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(owed)}",
                "invalid_request_error",
            )
        for call in message.get("tool_calls") or [] if role == "assistant" else []:
            function = call.get("function") if isinstance(call, dict) else None
            if (
                call.get("type") != "function"
                or not isinstance(call.get("id"), str)
                or not isinstance(function, dict)
                or not isinstance(function.get("arguments"), str)
            ):
                return _openai_error(
                    400,
                    f"Invalid value for 'messages[{index}].tool_calls'",
                    "invalid_request_error",
                )
            owed.append(call["id"])
    if owed:
        return _openai_error(
            400,
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            f"to each 'tool_call_id'. The following tool_call_ids did not have response "
            f"messages: {', '.join(owed)}",
            "invalid_request_error",
        )
    return None


def _check_anthropic(fake: FakeAIServer, headers: dict[str, str], body: Any) -> Answer | None:
    bearer = headers.get("authorization", "").removeprefix("Bearer ").strip()
    if fake.keys[ANTHROPIC] not in (headers.get("x-api-key"), bearer):
        return _anthropic_error(401, "authentication_error", "invalid x-api-key")
    if not headers.get("anthropic-version"):
        return _anthropic_error(
            400, "invalid_request_error", "anthropic-version: header is required"
        )
    if not isinstance(body, dict):
        return _anthropic_error(400, "invalid_request_error", "invalid JSON body")
    for name, kind in (("model", str), ("max_tokens", int), ("messages", list)):
        if not isinstance(body.get(name), kind):
            return _anthropic_error(400, "invalid_request_error", f"{name}: Field required")
    if body["max_tokens"] < 1 or not body["messages"]:
        return _anthropic_error(400, "invalid_request_error", "messages: at least one message")
    if "temperature" in body and not 0 <= body["temperature"] <= 1:
        return _anthropic_error(400, "invalid_request_error", "temperature: must be in [0, 1]")
    refused = _check_anthropic_messages(body["messages"])
    if refused is not None:
        return refused
    tools = body.get("tools", [])
    names = [t.get("name") for t in tools if isinstance(t, dict)]
    for tool in tools:
        schema = tool.get("input_schema") if isinstance(tool, dict) else None
        if not _NAME.match(str(tool.get("name", ""))) or not isinstance(schema, dict):
            return _anthropic_error(400, "invalid_request_error", "tools: invalid tool")
        if schema.get("type") != "object":
            return _anthropic_error(
                400, "invalid_request_error", "tools.0.input_schema.type: Input should be 'object'"
            )
    choice = body.get("tool_choice")
    if choice is not None and choice.get("type") not in ("auto", "any", "tool", "none"):
        return _anthropic_error(400, "invalid_request_error", "tool_choice.type: invalid")
    if choice is not None and choice.get("type") == "tool" and choice.get("name") not in names:
        return _anthropic_error(400, "invalid_request_error", "tool_choice: unknown tool")
    if choice is not None and choice.get("type") in ("any", "tool") and not names:
        return _anthropic_error(400, "invalid_request_error", "tool_choice: requires tools")
    return None


def _check_anthropic_messages(messages: list[Any]) -> Answer | None:
    """Alternating roles; every tool_use answered by a tool_result in the very next message."""
    owed: set[str] = set()
    for index, message in enumerate(messages):
        expected = "user" if index % 2 == 0 else "assistant"
        if not isinstance(message, dict) or message.get("role") != expected:
            return _anthropic_error(
                400,
                "invalid_request_error",
                "messages: roles must alternate between user and assistant, starting with user",
            )
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        if isinstance(content, list) and not content:
            return _anthropic_error(
                400, "invalid_request_error", f"messages.{index}: content must be non-empty"
            )
        answered = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
        if answered - owed:
            return _anthropic_error(
                400,
                "invalid_request_error",
                f"messages.{index}: tool_result block(s) provided when previous message "
                "does not contain a matching tool_use",
            )
        if owed - answered:
            return _anthropic_error(
                400,
                "invalid_request_error",
                f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(sorted(owed - answered))}. Each `tool_use` block "
                "must have a corresponding `tool_result` block in the next message.",
            )
        kinds = [b.get("type") for b in blocks]
        if kinds[: kinds.count("tool_result")] != ["tool_result"] * kinds.count("tool_result"):
            return _anthropic_error(
                400,
                "invalid_request_error",
                f"messages.{index}: tool_result blocks must come first",
            )
        if any(b.get("type") == "text" and not b.get("text") for b in blocks):
            return _anthropic_error(
                400, "invalid_request_error", "messages: text content blocks must be non-empty"
            )
        owed = {b.get("id") for b in blocks if b.get("type") == "tool_use"}
    if owed:
        return _anthropic_error(
            400,
            "invalid_request_error",
            "messages: the last message may not be an unanswered tool_use",
        )
    return None


# -- answers ----------------------------------------------------------------------------------


def _is_tool_loop(body: dict[str, Any]) -> bool:
    """A tool-loop request offers SOMAS's `finish` tool (structured output offers none)."""
    return any(_tool_name(api_tool) == "finish" for api_tool in body.get("tools") or [])


def _tool_name(tool: dict[str, Any]) -> str:
    return str(tool.get("function", {}).get("name") or tool.get("name") or "")


def task_of(body: dict[str, Any]) -> dict[str, Any]:
    """The task a tool-loop request's first user message carries (SOMAS writes it as JSON)."""
    for message in body.get("messages") or []:
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return _task_of(message["content"])
    return {}


def _task_of(user: str) -> dict[str, Any]:
    text = user.split("\n\nFiles may be changed only under:", 1)[0]
    try:
        task = json.loads(text)
    except ValueError:
        return {}
    return task if isinstance(task, dict) else {}


def _stage_of(api: str, body: dict[str, Any]) -> str:
    if _is_tool_loop(body):
        return str(task_of(body).get("stage", ""))
    if api == OPENAI:
        name = body.get("response_format", {}).get("json_schema", {}).get("name", "")
        return str(name).removesuffix("_output")
    return (
        str(body.get("tools", [{}])[0].get("name", ""))
        .removeprefix("submit_")
        .removesuffix("_output")
    )


def _success(api: str, body: dict[str, Any], output: Any, number: int) -> Answer:
    text = output if isinstance(output, str) else json.dumps(output)
    tokens_in = len(json.dumps(body)) // 4
    tokens_out = max(len(text) // 4, 1)
    if api == OPENAI:
        return 200, {
            "id": f"chatcmpl-fake{number}",
            "object": "chat.completion",
            "created": 1767258000,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": tokens_in,
                "completion_tokens": tokens_out,
                "total_tokens": tokens_in + tokens_out,
            },
            "system_fingerprint": None,
        }
    block = (
        {"type": "text", "text": text}
        if isinstance(output, str)
        else {
            "type": "tool_use",
            "id": f"toolu_fake{number}",
            "name": body["tools"][0]["name"],
            "input": output,
        }
    )
    return 200, {
        "id": f"msg_fake{number}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [block],
        "stop_reason": "end_turn" if isinstance(output, str) else "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
    }


def _answer(api: str, action: Action, body: dict[str, Any], number: int) -> Answer:
    if action.kind == "ok" and _is_tool_loop(body):
        # A valid reply in a tool loop: `finish` with the stage's demo output as its arguments.
        output = action.output or demo_output(_stage_of(api, body))
        arguments = {k: v for k, v in output.items() if k not in ("files", "deleted")}
        return _tool_calls(api, body, [("finish", arguments)], "", number)
    if action.kind == "ok":
        output = action.output or demo_output(_stage_of(api, body))
        return _success(api, body, output, number)
    if action.kind == "refusal":
        status, payload = _success(api, body, "", number)
        payload["choices"][0]["message"].update(content=None, refusal="I can't help with that.")
        return status, payload
    if action.kind == "invalid":
        broken: Any = "Sure! Here is the JSON you asked for: {oops" if api == OPENAI else {}
        return _success(api, body, broken, number)
    if api == OPENAI:
        return {
            "rate_limited": _openai_error(
                429, "Rate limit reached for requests", "requests", "rate_limit_exceeded"
            ),
            "quota": _openai_error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            ),
            "server_error": _openai_error(
                action.status,
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
            ),
        }[action.kind]
    return {
        "rate_limited": _anthropic_error(429, "rate_limit_error", "Number of requests exceeded"),
        "quota": _anthropic_error(
            400, "invalid_request_error", "Your credit balance is too low to access the API"
        ),
        "server_error": _anthropic_error(
            action.status,
            "overloaded_error" if action.status == 529 else "api_error",
            "Internal server error",
        ),
    }[action.kind]


# -- scripted tool calling ----------------------------------------------------------------------


def _openai_context(body: dict[str, Any]) -> ToolContext:
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    exchanges, turn, user = [], 1, ""
    for message in body["messages"]:
        if message["role"] == "user" and not user:
            user = str(message["content"])
        if message["role"] == "assistant":
            turn += 1
            for call in message.get("tool_calls") or []:
                function = call["function"]
                calls[call["id"]] = (function["name"], json.loads(function["arguments"]))
        if message["role"] == "tool":
            name, arguments = calls[message["tool_call_id"]]
            text = str(message["content"])
            exchanges.append(Exchange(name, arguments, text, text.startswith("error:")))
    tools = [t["function"]["name"] for t in body.get("tools", [])]
    return ToolContext(turn, exchanges, tools, user)


def _anthropic_context(body: dict[str, Any]) -> ToolContext:
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    exchanges, turn, user = [], 1, ""
    for message in body["messages"]:
        content = message["content"]
        if message["role"] == "user" and not user:
            user = content if isinstance(content, str) else ""
        blocks = content if isinstance(content, list) else []
        if message["role"] == "assistant":
            turn += 1
        for block in blocks:
            if block["type"] == "tool_use":
                calls[block["id"]] = (block["name"], block["input"])
            if block["type"] == "tool_result":
                name, arguments = calls[block["tool_use_id"]]
                result = block.get("content", "")
                text = (
                    result
                    if isinstance(result, str)
                    else "".join(part.get("text", "") for part in result)
                )
                exchanges.append(Exchange(name, arguments, text, bool(block.get("is_error"))))
    return ToolContext(turn, exchanges, [t["name"] for t in body.get("tools", [])], user)


def _policy_answer(fake: FakeAIServer, api: str, body: dict[str, Any], number: int) -> Answer:
    context = (_openai_context if api == OPENAI else _anthropic_context)(body)
    answer = fake.policies[api](context)
    for name, _ in answer.calls:
        if name not in context.tools:
            fake.violations.append(f"request {number}: the policy called {name!r}, not offered")
    return _tool_calls(api, body, answer.calls, answer.text, number)


def _tool_calls(
    api: str,
    body: dict[str, Any],
    requested: list[tuple[str, dict[str, Any]]],
    text: str,
    number: int,
) -> Answer:
    """A 200 whose assistant message asks for `requested` tool calls (after `text`)."""
    calls = [(f"{number}_{i}", name, args) for i, (name, args) in enumerate(requested)]
    tokens_in = len(json.dumps(body)) // 4
    tokens_out = max(len(json.dumps(requested) + text) // 4, 1)
    if api == OPENAI:
        tool_calls = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {"name": n, "arguments": json.dumps(a)},
            }
            for i, n, a in calls
        ]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text or None,
            "refusal": None,
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        return 200, {
            "id": f"chatcmpl-fake{number}",
            "object": "chat.completion",
            "created": 1767258000,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if tool_calls else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": tokens_in,
                "completion_tokens": tokens_out,
                "total_tokens": tokens_in + tokens_out,
            },
            "system_fingerprint": None,
        }
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    blocks += [{"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": a} for i, n, a in calls]
    return 200, {
        "id": f"msg_fake{number}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": blocks,
        "stop_reason": "tool_use" if calls else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
    }


class _Server(ThreadingHTTPServer):
    """The HTTP server of one fake: its handlers find the fake's script here."""

    def __init__(self, fake: FakeAIServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        assert isinstance(self.server, _Server)
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        api = _PATHS.get(self.path.split("?")[0])
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if api is None:
            self._send(404, {"error": {"message": f"Unknown path {self.path}"}}, {})
            return
        check = _check_openai if api == OPENAI else _check_anthropic
        refused = check(fake, headers, body)
        action = fake.next_action(api) if refused is None else Action("refused")
        if action.kind == "policy" and not _is_tool_loop(body):
            action = fake.default[api]  # a policy answers tool loops; structured calls as usual
        with fake.lock:
            fake.requests.append(Request(api, headers, body, action.kind))
            number = len(fake.requests)
        if fake.on_request is not None:
            fake.on_request(number)
        if refused is not None:
            self._send(*refused, {})
            return
        if action.kind == "hang":
            fake.released.wait(timeout=60)
            return
        if action.kind == "garbage":
            self._send_raw(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            return
        if action.delay:
            time.sleep(action.delay)  # the fake server's thread, never the code under test
        if action.kind == "policy":
            self._send(*_policy_answer(fake, api, body, number), {})
            return
        status, payload = _answer(api, action, body, number)
        self._send(status, payload, action.headers)

    def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_raw(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        headers = headers or {}
        try:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): nothing to answer
