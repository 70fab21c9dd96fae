"""SOMAS's MCP tool server, exercised by the `mcp` package's own client over HTTP."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from somas_action.core.events import EventType
from somas_action.providers.engines.catalog import McpEndpoint
from somas_action.providers.engines.mcp_tools import (
    McpToolServer,
    ToolCallRecord,
    as_observation,
)
from tests.engine_scenarios import make_project
from tests.engine_tools import CheckoutTools


def call_tools(endpoint: McpEndpoint, calls: list[tuple[str, dict[str, Any]]]) -> Any:
    """Connect a real MCP client, list the tools, make `calls`; (tool names, results)."""

    async def session() -> Any:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {endpoint.token}"})
        async with Client(streamable_http_client(endpoint.url, http_client=http)) as client:
            listed = await client.list_tools()
            results = [await client.call_tool(name, args) for name, args in calls]
            return sorted(t.name for t in listed.tools), results

    return anyio.run(session)


def text(result: Any) -> str:
    """The text of a tool result."""
    return "".join(block.text for block in result.content)


@pytest.fixture
def tools(tmp_path: Path) -> CheckoutTools:
    """Tools over the project fixture (a tracked greet.py and its passing test)."""
    return CheckoutTools(make_project(tmp_path / "repo"))


@pytest.mark.subprocess
def test_a_real_client_lists_and_calls_every_tool_and_each_call_is_reported(
    tools: CheckoutTools,
) -> None:
    records: list[ToolCallRecord] = []
    with McpToolServer(tools, records.append) as endpoint:
        names, results = call_tools(
            endpoint,
            [
                ("list_files", {"prefix": ""}),
                ("read_file", {"path": "greet.py", "start": 2, "end": 2}),
                ("search", {"pattern": "def greet", "prefix": ""}),
                ("run_tests", {}),
            ],
        )

    assert names == ["list_files", "read_file", "run_tests", "search"]
    assert [text(r) for r in results] == [
        "greet.py\ntest_greet.py",
        '2:     return "hi " + name',
        "greet.py:1:def greet(name):",
        results[3].content[0].text,
    ]
    assert text(results[3]).startswith("1 passed")
    assert len(tools.test_runs) == 1
    assert [(r.tool, r.ok) for r in records] == [
        ("list_files", True), ("read_file", True), ("search", True), ("run_tests", True),
    ]  # fmt: skip
    assert records[1].arguments == {"path": "greet.py", "start": 2, "end": 2}
    for record, result in zip(records, results, strict=True):
        assert record.result_sha256 == hashlib.sha256(text(result).encode()).hexdigest()
        assert record.result_chars == len(text(result))


def test_a_failing_tool_is_an_error_the_model_sees_and_an_error_event(
    tools: CheckoutTools,
) -> None:
    records: list[ToolCallRecord] = []
    with McpToolServer(tools, records.append) as endpoint:
        _, [result] = call_tools(endpoint, [("read_file", {"path": "../etc/passwd"})])

    assert result.is_error
    message = "'../etc/passwd' is not a tracked file"
    assert text(result) == f"Error executing tool read_file: {message}"
    assert records[0].output == message
    observation = as_observation(records[0])
    assert (observation.event_type, observation.status) == (EventType.ENGINE_TOOL_CALLED, "error")
    assert observation.data["arguments"] == {"path": "../etc/passwd", "start": 1, "end": 200}
    assert "output" not in observation.data


def test_long_output_is_cut_at_the_bound(tools: CheckoutTools) -> None:
    records: list[ToolCallRecord] = []
    with McpToolServer(tools, records.append, max_output_chars=10) as endpoint:
        _, [result] = call_tools(endpoint, [("list_files", {"prefix": ""})])

    assert text(result) == "greet.py\nt\n[... 12 more characters not shown]"
    assert records[0].output == text(result)


def test_a_request_without_the_token_is_refused(tools: CheckoutTools) -> None:
    records: list[ToolCallRecord] = []
    with McpToolServer(tools, records.append) as endpoint:
        request = urllib.request.Request(
            endpoint.url,
            data=b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}',
            headers={"content-type": "application/json", "accept": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)

    assert refused.value.code == 401
    assert records == []
