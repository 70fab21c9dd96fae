"""The engines' streaming fakes, checked with the official SDKs: what they send parses as the
real API's stream, and what the real API refuses, they refuse with its error shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from openai.types.responses import ResponseCompletedEvent, ResponseFunctionToolCall

from tests.fakes import anthropic_stream, responses_stream
from tests.fakes.anthropic_stream import FakeAnthropicStream, ToolUse
from tests.fakes.responses_stream import FakeResponsesStream, FunctionCall

KEY = "sk-test-fake-streams-91b3"


@pytest.fixture
def responses() -> Iterator[FakeResponsesStream]:
    with FakeResponsesStream(KEY) as fake:
        yield fake


@pytest.fixture
def messages() -> Iterator[FakeAnthropicStream]:
    with FakeAnthropicStream(KEY) as fake:
        yield fake


def openai_client(fake: FakeResponsesStream, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=fake.url, max_retries=0)


def test_the_responses_stream_parses_with_the_openai_sdk(responses: FakeResponsesStream) -> None:
    responses.script(
        responses_stream.calls(
            FunctionCall("exec_command", {"cmd": "ls"}),
            FunctionCall("search", {"pattern": "x"}, "mcp__somas"),
            text="Looking.",
        ),
        responses_stream.says("Done."),
    )
    client = openai_client(responses)
    stream = client.responses.create(model="gpt-5-codex", input="list the files", stream=True)
    events = list(stream)
    assert events[0].type == "response.created"
    final = events[-1]
    assert isinstance(final, ResponseCompletedEvent)
    items = final.response.output
    assert [i.type for i in items] == ["message", "function_call", "function_call"]
    calls = [i for i in items if isinstance(i, ResponseFunctionToolCall)]
    assert calls[0].name == "exec_command" and calls[0].arguments == '{"cmd": "ls"}'
    assert final.response.usage is not None and final.response.usage.input_tokens > 0
    call_id = calls[0].call_id
    follow_up: list[Any] = [
        {"role": "user", "content": "list the files"},
        {"type": "function_call", "call_id": call_id, "name": "exec_command", "arguments": "{}"},
        {"type": "function_call_output", "call_id": call_id, "output": "a.py"},
    ]
    done = list(client.responses.create(model="gpt-5-codex", input=follow_up, stream=True))
    assert isinstance(done[-1], ResponseCompletedEvent)
    assert done[-1].response.output_text == "Done."
    assert responses.refusals() == []


def test_the_responses_fake_refuses_what_the_api_refuses(responses: FakeResponsesStream) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai_client(responses, "sk-wrong").responses.create(model="m", input="x", stream=True)
    orphan: list[Any] = [{"type": "function_call_output", "call_id": "call_x", "output": "?"}]
    with pytest.raises(openai.BadRequestError, match="No tool call found"):
        openai_client(responses).responses.create(model="m", input=orphan, stream=True)
    responses.script(responses_stream.fails(429, "insufficient_quota", "insufficient_quota", "q"))
    with pytest.raises(openai.RateLimitError) as raised:
        openai_client(responses).responses.create(model="m", input="x", stream=True)
    assert raised.value.code == "insufficient_quota"


def test_the_messages_stream_parses_with_the_anthropic_sdk(messages: FakeAnthropicStream) -> None:
    read = ToolUse("Read", {"file_path": "/a.py"})
    messages.script(anthropic_stream.calls(read, text="Reading."))
    client = anthropic.Anthropic(api_key=KEY, base_url=messages.url, max_retries=0)
    with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=100,
        messages=[{"role": "user", "content": "read a.py"}],
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"]
    tool = final.content[1]
    assert tool.type == "tool_use" and tool.name == "Read" and tool.input == {"file_path": "/a.py"}
    assert final.stop_reason == "tool_use"
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(api_key="wrong", base_url=messages.url, max_retries=0).messages.create(
            model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}]
        )
